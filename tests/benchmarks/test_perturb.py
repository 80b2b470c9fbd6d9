"""benchmarks/perturb.py: every perturbation moves the truth exactly as it moves the pixels."""

import numpy as np
import pytest

from benchmarks.perturb import PERTURBATIONS


def blob_image(shape, points, sigma=3.0):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape, np.float32)
    for r, c in points:
        image += np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * sigma**2))
    return image


def centroid(image, near, radius=9):
    r0, c0 = np.round(near).astype(int)
    win = image[r0 - radius:r0 + radius + 1, c0 - radius:c0 + radius + 1].astype(np.float64)
    win = np.clip(win - np.median(image), 0, None)
    rows, cols = np.mgrid[r0 - radius:r0 + radius + 1, c0 - radius:c0 + radius + 1]
    return np.array([(win * rows).sum(), (win * cols).sum()]) / win.sum()


POINTS = np.array([[30.3, 40.7], [100.0, 60.2], [75.5, 20.0], [12.0, 110.0]])


@pytest.mark.parametrize("name", [n for n in PERTURBATIONS if not n.startswith("gamma")])
def test_landmarks_follow_the_pixels(name):
    image = blob_image((121, 140), POINTS)
    moved, truth = PERTURBATIONS[name](image, POINTS)
    kept = ~np.isnan(truth).any(axis=1)
    assert kept.any()
    scale = 0.75 if name == "scale0.75" else 1.3 if name == "scale1.3" else 1.0
    for point in truth[kept]:
        if np.all(point > 10 * scale) and np.all(point < np.array(moved.shape) - 10 * scale):
            np.testing.assert_allclose(centroid(moved, point, radius=round(9 * scale)), point, atol=0.15)


def test_points_pushed_out_of_the_field_are_nan():
    image = blob_image((100, 100), POINTS[:1])
    _, truth = PERTURBATIONS["cut_top20%"](image, np.array([[10.0, 50.0], [60.0, 50.0]]))
    assert np.isnan(truth[0]).all() and np.allclose(truth[1], [40.0, 50.0])
    _, truth = PERTURBATIONS["shift+15%"](image, np.array([[50.0, 90.0]]))
    assert np.isnan(truth[0]).all()


def test_gamma_keeps_landmarks_and_range_and_changes_mid_tones():
    image = np.linspace(0, 255, 256, dtype=np.float32).reshape(16, 16)
    out, truth = PERTURBATIONS["gamma0.6"](image, POINTS)
    np.testing.assert_array_equal(truth, POINTS)
    assert out.min() == pytest.approx(0) and out.max() == pytest.approx(255)
    assert out[8, 0] > image[8, 0] + 20


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_magnification_is_how_distances_between_landmarks_change(name):
    from benchmarks.perturb import MAGNIFICATION

    image = blob_image((121, 140), POINTS)
    _, moved = PERTURBATIONS[name](image, POINTS)
    keep = ~np.isnan(moved).any(axis=1)
    a, b = np.nonzero(keep)[0][:2]
    ratio = np.linalg.norm(moved[a] - moved[b]) / np.linalg.norm(POINTS[a] - POINTS[b])
    assert ratio == pytest.approx(MAGNIFICATION.get(name, 1.0), rel=0.01)
