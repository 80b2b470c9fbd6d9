"""The in-graph layers against numpy references."""

import keras
import numpy as np
import pytest

from lmk_tf.method.layers import (
    SubImageCrop,
    WeightedDisplacementAggregation,
    cell_centres,
    decode_displacement,
    encode_displacement,
)


def reference_aggregation(disp, prob, stride):
    """Plain numpy: sum_i p_i (c_i + d_i) / sum_i p_i for one image."""
    grid = prob.shape[:-1]
    L = prob.shape[-1]
    ndim = len(grid)
    d = disp.reshape(grid + (L, ndim))
    out = np.zeros((L, ndim))
    for l in range(L):
        num, den = np.zeros(ndim), 0.0
        for idx in np.ndindex(*grid):
            c = np.array(idx) * stride + (stride - 1) / 2
            num += prob[idx + (l,)] * (c + d[idx + (l,)])
            den += prob[idx + (l,)]
        out[l] = num / den
    return out


def logit(p):
    p = np.asarray(p, np.float64)
    return (np.log(p) - np.log1p(-p)).astype("float32")


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("grid,stride", [((4, 5), 8), ((3, 4, 2), 4)])
def test_aggregation_matches_numpy(grid, stride, from_logits):
    rng = np.random.default_rng(0)
    L, ndim = 3, len(grid)
    disp = rng.normal(0, 10, size=grid + (L * ndim,)).astype("float32")
    # Each landmark's probabilities sum to a known mass: 0.3 and 0.75 are the
    # confidence itself, 1.6 is capped at 1.
    prob = rng.uniform(0.1, 1, size=grid + (L,))
    mass = np.array([0.3, 0.75, 1.6])
    prob = (prob / prob.reshape(-1, L).sum(0) * mass).astype("float32")
    scores = logit(prob) if from_logits else prob
    pos, conf = WeightedDisplacementAggregation(stride, from_logits=from_logits)(disp[None], scores[None])
    np.testing.assert_allclose(np.asarray(pos)[0], reference_aggregation(disp, prob, stride), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(conf)[0], [0.3, 0.75, 1.0], rtol=1e-5)


def test_aggregation_single_cell_holds_all_probability():
    grid, stride = (6, 6), 8
    disp = np.zeros(grid + (2,), "float32")
    disp[2, 3] = [1.5, -2.25]
    prob = np.zeros(grid + (1,), "float32")
    prob[2, 3, 0] = 1.0
    pos, _ = WeightedDisplacementAggregation(stride)(disp[None], prob[None])
    expected = np.array([2 * 8 + 3.5 + 1.5, 3 * 8 + 3.5 - 2.25])
    np.testing.assert_allclose(np.asarray(pos)[0, 0], expected, atol=1e-5)


def test_aggregation_tiny_probabilities_do_not_underflow():
    """Every p = 1e-40, a float32 subnormal that the CPU flushes to zero.

    The answer is still the probability-weighted centre: here every cell votes
    for its own centre with equal weight, so the mean of the centres (3.5, 3.5).
    """
    disp = np.zeros((1, 4, 4, 2), "float32")
    tiny = np.full((1, 4, 4, 1), 1e-40)
    pos, conf = WeightedDisplacementAggregation(2, from_logits=True)(disp, logit(tiny))
    np.testing.assert_allclose(np.asarray(pos)[0, 0], [3.5, 3.5], atol=1e-4)
    assert float(np.asarray(conf)[0, 0]) < 1e-30
    # From probabilities the subnormals are lost; no cell stands out, all vote equally.
    pos, _ = WeightedDisplacementAggregation(2)(disp, tiny.astype("float32"))
    np.testing.assert_allclose(np.asarray(pos)[0, 0], [3.5, 3.5], atol=1e-4)


def test_aggregation_from_logits_weighs_tiny_unequal_probabilities_exactly():
    # p = 1e-40 in one cell and 1e-44 in the 15 others (float64 reference): the
    # weighted centre sits 0.1 % of the way from that cell towards the others.
    rng = np.random.default_rng(4)
    disp = rng.normal(0, 3, size=(4, 4, 2)).astype("float32")
    prob = np.full((4, 4, 1), 1e-44)
    prob[1, 2, 0] = 1e-40
    pos, _ = WeightedDisplacementAggregation(2, from_logits=True)(disp[None], logit(prob)[None])
    np.testing.assert_allclose(np.asarray(pos)[0], reference_aggregation(disp, prob, 2), atol=1e-3)
    assert np.abs(np.asarray(pos)[0, 0] - ([1 * 2 + 0.5, 2 * 2 + 0.5] + disp[1, 2])).max() > 3e-3


# Five cells on a row, voting for positions 0, 10, 20, 30, 40 with p = 0.8, 0.5, 0.39, 0.2, 0.05.
VOTES = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
PROBS = np.array([0.8, 0.5, 0.39, 0.2, 0.05])


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("threshold,top_k,kept", [
    (None, None, [0, 1, 2, 3, 4]),
    (0.5, None, [0, 1]),  # p >= 0.5 * 0.8 = 0.4 keeps 0.8 and 0.5, not 0.39
    (0.24, None, [0, 1, 2, 3]),
    (None, 2, [0, 1]),
    (None, 4, [0, 1, 2, 3]),
    (0.3, 4, [0, 1, 2]),  # both: the threshold (p >= 0.24) removes the fourth of the top 4
])
def test_aggregation_threshold_and_top_k_choose_the_voters(threshold, top_k, kept, from_logits):
    stride = 2
    centres = np.arange(5) * stride + 0.5
    disp = np.zeros((1, 1, 5, 2), "float32")
    disp[0, 0, :, 1] = VOTES - centres
    prob = PROBS[None, None, :, None].astype("float32")
    scores = logit(prob) if from_logits else prob
    layer = WeightedDisplacementAggregation(stride, threshold=threshold, top_k=top_k, from_logits=from_logits)
    pos, conf = layer(disp, scores)
    expected = np.sum(PROBS[kept] * VOTES[kept]) / np.sum(PROBS[kept])
    np.testing.assert_allclose(np.asarray(pos)[0, 0], [0.5, expected], atol=1e-4)
    # The confidence is the mass of all cells, whichever vote.
    np.testing.assert_allclose(np.asarray(conf)[0, 0], 1.0 if PROBS.sum() > 1 else PROBS.sum())


def test_aggregation_top_k_keeps_only_best_cells():
    disp = np.zeros((1, 3, 3, 2), "float32")
    prob = np.full((1, 3, 3, 1), 0.1, "float32")
    prob[0, 0, 0, 0] = 0.9
    pos, _ = WeightedDisplacementAggregation(4, top_k=1)(disp, prob)
    np.testing.assert_allclose(np.asarray(pos)[0, 0], [1.5, 1.5], atol=1e-5)


def test_aggregation_rejects_bad_settings():
    with pytest.raises(ValueError, match="threshold"):
        WeightedDisplacementAggregation(8, threshold=1.5)
    with pytest.raises(ValueError, match="stride"):
        WeightedDisplacementAggregation(0)


@pytest.mark.parametrize("encoding", ["cells", "log"])
def test_displacement_encoding_round_trip(encoding):
    d = np.array([-40.0, -1.0, 0.0, 0.3, 17.0], "float32")
    back = decode_displacement(encode_displacement(d, 8, encoding), 8, encoding)
    np.testing.assert_allclose(np.asarray(back), d, rtol=1e-4, atol=1e-4)


def numpy_bilinear(img, y, x):
    """Reference with zero outside the image."""
    def px(i, j):
        return img[i, j] if 0 <= i < img.shape[0] and 0 <= j < img.shape[1] else 0.0
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    fy, fx = y - y0, x - x0
    return ((1 - fy) * (1 - fx) * px(y0, x0) + (1 - fy) * fx * px(y0, x0 + 1)
            + fy * (1 - fx) * px(y0 + 1, x0) + fy * fx * px(y0 + 1, x0 + 1))


def test_crop_matches_numpy_bilinear_including_outside():
    rng = np.random.default_rng(1)
    img = rng.normal(size=(20, 17)).astype("float32")
    centres = np.array([[[5.3, 7.8], [0.2, 16.1]]], "float32")  # second crop leaves the image
    crops = np.asarray(SubImageCrop(6, 2)(img[None, ..., None], centres))
    assert crops.shape == (1, 2, 6, 6, 1)
    for l in range(2):
        for u in range(6):
            for v in range(6):
                y = centres[0, l, 0] + u - 2.5
                x = centres[0, l, 1] + v - 2.5
                assert crops[0, l, u, v, 0] == pytest.approx(numpy_bilinear(img, y, x), abs=1e-5)


def test_crop_3d_integer_centre_is_exact_subvolume():
    vol = np.arange(10 * 11 * 12, dtype="float32").reshape(10, 11, 12)
    crops = np.asarray(SubImageCrop(4, 3)(vol[None, ..., None], np.array([[[5.5, 4.5, 6.5]]], "float32")))
    np.testing.assert_array_equal(crops[0, 0, ..., 0], vol[4:8, 3:7, 5:9])


def test_cell_centres_follow_stride():
    c = np.asarray(cell_centres([2, 3], 4))
    np.testing.assert_array_equal(c[1, 2], [5.5, 9.5])


@pytest.mark.parametrize(
    "layer", [WeightedDisplacementAggregation(8, threshold=0.1, top_k=3, from_logits=True),
              SubImageCrop(8, 3, fill_value=-1.0)]
)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer)).get_config() == config
