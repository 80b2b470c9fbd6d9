"""The synthetic generator: geometry exactness, determinism, variation, errors."""

import math

import numpy as np
import pytest

from lmk_tf import synthetic
from lmk_tf.errors import ConfigError
from lmk_tf.image import Image

# Everything that is not geometry switched off, so that images can be measured.
CLEAN = synthetic.SyntheticConfig(
    noise_sigma=(0.0, 0.0),
    inhomogeneity=0.0,
    contrast_jitter=0.0,
    brightness_jitter=0.0,
    num_distractors=(0, 0),
    p_outside=0.0,
)


def test_defaults_2d():
    image, points, names = synthetic.make_sample(2, 0)
    assert isinstance(image, Image)
    assert image.shape == (256, 256)
    assert image.spacing == (1.0, 1.0)
    assert image.array.dtype == np.float32
    assert points.dtype == np.float64 and points.shape == (6, 2)
    assert names == synthetic.landmark_names(2) == list(synthetic.LANDMARKS_2D[:6])
    # Raw X-ray-like values, not normalised.
    assert image.array.min() >= 0.0 and image.array.max() <= 1000.0
    assert image.array.max() > 300.0
    assert image.meta["synthetic"]["seed"] == 0


def test_defaults_3d():
    image, points, names = synthetic.make_sample(3, 0)
    assert image.shape == (64, 64, 64)
    assert image.spacing == (1.5, 1.5, 1.5)
    assert image.array.dtype == np.float32
    assert points.shape == (5, 3)
    assert names == ["cone_apex", "rod_end", "box_corner", "blob_centre", "foramen_centre"]
    assert image.array.min() >= 0.0 and image.array.max() <= 1000.0


def test_shape_spacing_and_count_overrides():
    image, points, names = synthetic.make_sample(
        3, 4, shape=(40, 48, 32), spacing=(2.0, 1.0, 1.5), num_landmarks=4
    )
    assert image.shape == (40, 48, 32)
    assert image.spacing == (2.0, 1.0, 1.5)
    assert points.shape == (4, 3) and len(names) == 4
    image, points, names = synthetic.make_sample(2, 4, num_landmarks=8)
    assert names == list(synthetic.LANDMARKS_2D)


def test_same_seed_is_byte_identical_and_seeds_differ():
    for ndim in (2, 3):
        a, pa, na = synthetic.make_sample(ndim, 11)
        b, pb, nb = synthetic.make_sample(ndim, 11)
        c, pc, _ = synthetic.make_sample(ndim, 12)
        assert a.array.tobytes() == b.array.tobytes()
        assert pa.tobytes() == pb.tobytes() and na == nb
        assert a.array.tobytes() != c.array.tobytes()
        assert np.abs(pa - pc).max() > 1.0


def test_make_dataset_is_reproducible_sample_by_sample():
    data = synthetic.make_dataset(2, 3, seed=5, shape=(64, 64), spacing=(4.0, 4.0))
    assert len(data) == 3
    for i, (image, points, _names) in enumerate(data):
        again, again_points, _ = synthetic.make_sample(
            2, synthetic.sample_seed(5, i), shape=(64, 64), spacing=(4.0, 4.0)
        )
        assert image.array.tobytes() == again.array.tobytes()
        np.testing.assert_array_equal(points, again_points)
    assert synthetic.sample_seed(5, 0) != synthetic.sample_seed(5, 1)
    assert synthetic.sample_seed(5, 0) != synthetic.sample_seed(6, 0)


def _bilinear(image, point):
    (r, c), (i, j) = point - np.floor(point), np.floor(point).astype(int)
    block = image[i : i + 2, j : j + 2]
    return (
        block[0, 0] * (1 - r) * (1 - c)
        + block[0, 1] * (1 - r) * c
        + block[1, 0] * r * (1 - c)
        + block[1, 1] * r * c
    )


def _fit_edge(coverage, start, along, normal):
    """Boundary points (0.5 crossings) along an edge; returns (point on line, direction)."""
    found = []
    for s in np.arange(5.0, 15.0, 0.5):
        base = start + s * along
        offsets = np.linspace(-3.0, 3.0, 121)
        values = np.array([_bilinear(coverage, base + t * normal) for t in offsets])
        k = np.nonzero((values[:-1] - 0.5) * (values[1:] - 0.5) <= 0)[0][0]
        t = offsets[k] + (0.5 - values[k]) / (values[k + 1] - values[k]) * (offsets[1] - offsets[0])
        found.append(base + t * normal)
    found = np.array(found)
    centre = found.mean(axis=0)
    direction = np.linalg.svd(found - centre)[2][0]
    return centre, direction


@pytest.mark.parametrize("angle_deg, scale", [(0.0, 1.0), (12.0, 0.9), (-14.0, 1.13)])
def test_rendered_corner_is_the_landmark(angle_deg, scale):
    # A square through the generator's own transform and rasteriser; its
    # corner, measured from the image by intersecting the two fitted edges,
    # must be the transformed vertex (pixel-centre convention, rotation
    # direction and scale all included).
    shape, spacing = (64, 64), np.array([1.0, 1.0])
    a = math.radians(angle_deg)
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    xf = synthetic._Transform(
        rotation * scale, np.array([1.37, -2.71]), (np.array(shape) - 1) / 2, spacing, scale
    )
    corner = np.array([-10.0, -12.0])
    square = synthetic.Polygon(
        np.array([corner, corner + [0.0, 25.0], corner + [25.0, 25.0], corner + [25.0, 0.0]])
    )
    coverage = np.zeros(shape, np.float32)
    # A 2-pixel edge keeps the bilinear 0.5-crossing (the measurement) unbiased;
    # the corner's exactness does not depend on the edge width.
    synthetic._render(coverage, square, 1.0, xf, 2.0, additive=True)
    expected = xf.to_index(corner[None])[0]
    # The two edges leave the corner along the transformed template axes.
    along_rows = rotation @ [1.0, 0.0]
    along_cols = rotation @ [0.0, 1.0]
    c1, d1 = _fit_edge(coverage, expected, along_rows, along_cols)
    c2, d2 = _fit_edge(coverage, expected, along_cols, along_rows)
    # Intersect c1 + u d1 = c2 + v d2.
    u, _ = np.linalg.solve(np.stack([d1, -d2], axis=1), c2 - c1)
    measured = c1 + u * d1
    assert np.linalg.norm(measured - expected) < 0.03, (measured, expected)
    # Partial volume: the total coverage is the square's area in pixels (with
    # a narrow edge: wide edges round the corners off, by about edge_px^2).
    coverage[:] = 0.0
    synthetic._render(coverage, square, 1.0, xf, 0.5, additive=True)
    assert abs(coverage.sum() - (25.0 * scale) ** 2) < 0.5


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_blob_landmark_is_the_blob_centroid_3d(seed):
    image, points, names = synthetic.make_sample(3, seed, config=CLEAN)
    p = points[names.index("blob_centre")]
    c = np.round(p).astype(int)
    window = image.array[c[0] - 5 : c[0] + 6, c[1] - 5 : c[1] + 6, c[2] - 5 : c[2] + 6]
    grid = np.stack(np.meshgrid(*[np.arange(-5, 6)] * 3, indexing="ij"), axis=-1)
    # A ball of 4.5 voxels holds the blob (radius <= 2.5 voxels) and its edge,
    # but not the body wall further away.
    ball = np.linalg.norm(grid, axis=-1) <= 4.5
    weights = np.where(ball, np.clip(window - np.median(window[ball]), 0, None), 0.0)
    centroid = c + (weights[..., None] * grid).sum(axis=(0, 1, 2)) / weights.sum()
    assert np.linalg.norm(centroid - p) < 0.05, (centroid, p)


def test_same_physical_layout_at_any_resolution():
    # 256 mm at 1 mm and at (0.5, 2) mm: the same seed gives the same scene in
    # mm, so index i of one grid maps to (i + 0.5) * ratio - 0.5 of the other.
    fine, p_fine, _ = synthetic.make_sample(2, 7, config=CLEAN)
    aniso, p_aniso, _ = synthetic.make_sample(
        2, 7, shape=(512, 128), spacing=(0.5, 2.0), config=CLEAN
    )
    np.testing.assert_allclose(p_aniso, (p_fine + 0.5) * [2.0, 0.5] - 0.5, atol=1e-9)
    # The pictures agree too: fine pixels averaged to the coarse grid.
    coarse_from_fine = np.repeat(fine.array, 2, axis=0).reshape(512, 128, 2).mean(axis=2)
    correlation = np.corrcoef(coarse_from_fine.ravel(), aniso.array.ravel())[0, 1]
    assert correlation > 0.97


def test_outside_fov_frequency_and_truth():
    config = synthetic.SyntheticConfig()
    outside_count = 0
    for seed in range(200):
        image, points, names = synthetic.make_sample(2, seed, config=config)
        inside = image.contains_index(points)
        named = image.meta["synthetic"]["outside_landmark"]
        if named is None:
            assert inside.all(), seed
        else:
            outside_count += 1
            # Exactly the named landmark is outside, and clearly so.
            assert list(np.nonzero(~inside)[0]) == [names.index(named)], seed
            p = points[names.index(named)]
            beyond = np.maximum(-0.5 - p, p - (np.array(image.shape) - 0.5)).max()
            assert beyond >= 0.01 * 256 - 1e-6
    # p = 0.15 over 200 draws: sd 0.025; allow about 3 sd.
    assert 0.08 <= outside_count / 200 <= 0.23, outside_count


def test_no_landmark_outside_when_disabled_3d():
    for seed in range(30):
        image, points, _ = synthetic.make_sample(3, seed, config=CLEAN)
        assert image.contains_index(points).all(), seed
        assert image.meta["synthetic"]["outside_landmark"] is None


def test_every_layout_varies_between_samples():
    # Pose and shape vary: pairwise landmark distances are not constant.
    distances = []
    for seed in range(10):
        _, points, _ = synthetic.make_sample(2, seed)
        distances.append(np.linalg.norm(points[0] - points[4]))
    assert np.std(distances) > 2.0


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(ndim=4, seed=0), "got 4"),
        (dict(ndim=2, seed=-1), "got -1"),
        (dict(ndim=2, seed=0, num_landmarks=9), "got 9"),
        (dict(ndim=3, seed=0, num_landmarks=0), "got 0"),
        (dict(ndim=2, seed=0, shape=(8, 256)), "(8, 256)"),
        (dict(ndim=2, seed=0, spacing=(1.0, -1.0)), "-1.0"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, fragment):
    with pytest.raises(ConfigError) as info:
        synthetic.make_sample(**kwargs)
    assert fragment in str(info.value)


def test_bad_config_raises_config_error_quoting_the_value():
    with pytest.raises(ConfigError, match="1.5"):
        synthetic.SyntheticConfig(p_outside=1.5)
    with pytest.raises(ConfigError, match=r"\(3.0, 1.0\)"):
        synthetic.SyntheticConfig(noise_sigma=(3.0, 1.0))
    with pytest.raises(ConfigError, match="90"):
        synthetic.SyntheticConfig(max_rotation_deg=90)
