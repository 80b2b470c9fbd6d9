"""The shape_mm signal: each landmark against the combination of the others fitted on training heads."""

import numpy as np
import pytest
import tensorflow as tf

from lmk_tf.method.shape import shape_residual, shape_weights

rng = np.random.default_rng(0)
MEAN = rng.uniform(0.0, 100.0, size=(6, 2))


def training_heads(n=40, noise=0.5):
    """Heads that differ by an affine map (zoom, tilt, shear, shift) and a little anatomy."""
    heads = []
    for _ in range(n):
        a = np.array([[rng.uniform(0.8, 1.25), rng.uniform(-0.2, 0.2)], [rng.uniform(-0.2, 0.2), 1.0]])
        heads.append(MEAN @ a.T + rng.uniform(-20, 20, size=2) + rng.normal(0, noise, size=MEAN.shape))
    return np.stack(heads)


def residual(weights, points):
    return shape_residual(tf.constant(points, tf.float32), weights).numpy()


def test_weights_sum_to_one_per_landmark_and_skip_the_landmark_itself():
    w = np.asarray(shape_weights(training_heads()))
    assert w.shape == (6, 6)
    np.testing.assert_allclose(np.diag(w), 0.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-9)


def test_an_affinely_moved_head_fits_as_well_as_the_mean_one_and_a_misplaced_landmark_stands_out():
    w = shape_weights(training_heads())
    base = residual(w, MEAN)
    assert base.max() < 2.0
    # The combination moves with the points: a shift leaves every residual as it was, and a
    # linear map (here zoom 1.3 and 0.7, tilt, shear) stretches it at most by its largest factor.
    np.testing.assert_allclose(residual(w, MEAN + [500.0, -300.0]), base, atol=2e-3)
    a = np.array([[1.3, 0.25], [-0.1, 0.7]])
    assert (residual(w, MEAN @ a.T + [500.0, -300.0]) <= np.linalg.norm(a, 2) * base + 2e-3).all()
    wrong = MEAN.copy()
    wrong[2] += [15.0, 0.0]
    # It stands out; the landmarks whose combination leans on it move too (the calibration
    # weighs the signal with the others).
    assert residual(w, wrong)[2] > 10.0


def test_images_missing_a_landmark_are_left_out_of_the_fits_that_need_it():
    heads = training_heads()
    heads[0, 1] = np.nan
    w = np.asarray(shape_weights(heads))
    assert np.isfinite(w).all()
    with pytest.raises(ValueError, match="never seen"):
        shape_weights(np.full((3, 4, 2), np.nan))
    with pytest.raises(ValueError, match="L >= 3"):
        shape_weights(np.zeros((3, 2, 2)))
