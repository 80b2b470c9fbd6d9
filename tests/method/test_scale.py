"""The head's scale from the global estimate, and the local stage run at it."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from lmk_tf.method.graph import GlobalToLocal
from lmk_tf.method.scale import SCALE_RANGE, head_scale, pair_indices, reference_distances
from tests.method.test_graph import bowl_case, run

SHAPE = np.array([[0.0, 0.0], [30.0, 40.0], [60.0, 0.0], [10.0, 70.0]])


def test_reference_is_the_mean_pair_distance_over_the_training_images():
    points = np.stack([SHAPE, 2.0 * SHAPE])  # two heads, the second twice as large
    ref = reference_distances(points)
    a, b = pair_indices(4)
    np.testing.assert_allclose(ref, 1.5 * np.linalg.norm(SHAPE[a] - SHAPE[b], axis=1))
    assert ref[0] == pytest.approx(1.5 * 50.0)


def test_a_landmark_missing_in_one_image_counts_from_the_others():
    points = np.stack([SHAPE, 2.0 * SHAPE])
    points[1, 3] = np.nan
    ref = reference_distances(points)
    a, b = pair_indices(4)
    pairs_with_3 = (a == 3) | (b == 3)
    np.testing.assert_allclose(np.asarray(ref)[pairs_with_3], np.linalg.norm(SHAPE[a] - SHAPE[b], axis=1)[pairs_with_3])
    with pytest.raises(ValueError, match="never seen together"):
        reference_distances(np.full((2, 4, 2), np.nan))
    with pytest.raises(ValueError, match="L >= 3"):
        reference_distances(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("scale", [0.75, 1.3])
def test_the_scale_is_the_median_ratio_and_shrugs_off_a_misplaced_landmark(scale):
    reference = reference_distances(SHAPE[None])
    estimate = SHAPE * scale
    got = float(head_scale(tf.constant(estimate / 0.5), tf.constant([0.5, 0.5]), reference))
    assert got == pytest.approx(scale, rel=1e-5)
    # One landmark 40 mm off changes 3 of the 6 pair ratios; the median moves little.
    estimate[3] += [40.0, 0.0]
    got = float(head_scale(tf.constant(estimate), tf.constant([1.0, 1.0]), reference))
    assert got == pytest.approx(scale, rel=0.15)


def test_a_failed_estimate_is_held_to_the_range():
    reference = reference_distances(SHAPE[None])
    assert float(head_scale(tf.constant(SHAPE * 10), tf.constant([1.0, 1.0]), reference)) == SCALE_RANGE[1]
    assert float(head_scale(tf.constant(SHAPE * 0.01), tf.constant([1.0, 1.0]), reference)) == SCALE_RANGE[0]


def _scaled(model, reference):
    return GlobalToLocal(model.global_net, model.local_net, model.global_config, model.local_config,
                         model.landmark_names, presence_threshold=model.presence_threshold,
                         normalise_scale=True, reference_distances_mm=reference)


def test_the_local_stage_at_the_heads_scale_still_finds_the_landmark():
    image, truth, model = bowl_case("2d", bias_px=1.0)
    distance = float(np.linalg.norm((truth[0] - truth[1]) * np.asarray(image.spacing)))
    plain = run(model, image)
    # A reference head of the same size: scale 1, the answer of the plain graph.
    same = run(_scaled(model, [distance]), image)
    np.testing.assert_allclose(same["landmarks_index"], plain["landmarks_index"], atol=1e-4)
    # A reference head 2x smaller: the local stage runs at twice its spacing (its grid and
    # sub-images in other places; 2x keeps the stand-in's bowl quadratic after resampling,
    # as in test_graph.CASES), and the estimate mapped back still lands on the truth.
    coarse = run(_scaled(model, [distance / 2.0]), image)
    np.testing.assert_allclose(coarse["landmarks_index"], truth, atol=0.1)
    assert not np.allclose(coarse["local_spread_mm"], same["local_spread_mm"]) or not np.allclose(
        coarse["landmarks_index"], same["landmarks_index"], atol=1e-4)


def test_normalise_scale_without_a_reference_is_refused():
    _, _, model = bowl_case("2d")
    with pytest.raises(ValueError, match="reference_distances_mm for the 1 landmark pairs"):
        _scaled(model, None)
    with pytest.raises(ValueError, match="reference_distances_mm"):
        _scaled(model, [1.0, 2.0])


def test_the_setting_survives_a_keras_round_trip():
    _, _, model = bowl_case("2d")
    config = _scaled(model, [42.0]).get_config()
    assert config["normalise_scale"] is True and config["reference_distances_mm"] == [42.0]
    assert dataclasses.is_dataclass(type(model._g))
