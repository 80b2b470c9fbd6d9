"""Piecewise resampling equals the whole-image computation it replaces in the served graph."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from lmk_tf.method.config import NetConfig, StageConfig
from lmk_tf.method.graph import GlobalToLocal
from lmk_tf.method.layers import SubImageCrop, WeightedDisplacementAggregation, decode_displacement
from lmk_tf.method.networks import build_fcn, build_local_net
from lmk_tf.method.preprocess import normalise_intensity, pad_to_multiple, resample
from lmk_tf.method.windows import intensity_stats, normalised_resample, normalised_windows
from tests.method.whole_image import local_estimates

CASES = [  # shape, spacing, target: shrinking, growing along 2 mm slices, 2D
    ((9, 30, 26), (2.0, 0.8, 0.7), 1.0),
    ((12, 17, 20), (1.0, 1.5, 1.3), 0.75),
    ((31, 44), (0.3, 0.25), 1.0),
]


def _image(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(200.0, 80.0, shape).astype(np.float32)
    x.flat[rng.integers(x.size, size=5)] = 5000.0  # outliers the normalisation clips
    return x[..., None]


@pytest.mark.parametrize("shape,spacing,target", CASES)
def test_stats_and_global_resample_equal_the_whole_image_ones(shape, spacing, target):
    image = tf.constant(_image(shape))
    stats = intensity_stats(image)
    np.testing.assert_allclose([float(v) for v in stats],
                               [float(tf.reduce_mean(image)), float(tf.math.reduce_std(image))], rtol=1e-5)
    want, want_scale, want_off = resample(normalise_intensity(image), spacing, target)
    got, scale, off = normalised_resample(image, spacing, target, stats)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-5)
    np.testing.assert_array_equal(scale.numpy(), want_scale.numpy())
    np.testing.assert_array_equal(off.numpy(), want_off.numpy())


@pytest.mark.parametrize("shape,spacing,target", CASES)
def test_windows_are_the_whole_resampled_image_cut(shape, spacing, target):
    image = tf.constant(_image(shape, 1))
    full = resample(normalise_intensity(image), spacing, target)[0].numpy()
    ndim, size = len(shape), 7
    m = np.array(full.shape[:-1], np.float64)
    centres = np.array([m / 2 + 0.3, np.full(ndim, 0.2), m - 0.7, -np.full(ndim, 2.5),  # edges, half outside
                        m + 20.0, np.full(ndim, np.nan), np.full(ndim, 1e12)], np.float32)
    windows, starts = normalised_windows(image, spacing, target, intensity_stats(image), centres, size)
    assert windows.shape == (len(centres),) + (size,) * ndim + (1,)
    pad = size + 2
    padded = np.pad(full, [(pad, pad)] * ndim + [(0, 0)])
    compared = 0
    for window, start in zip(windows.numpy(), starts.numpy().astype(np.int64)):
        if np.all((start >= -pad) & (start + size <= m + pad)):
            cut = padded[tuple(slice(s + pad, s + pad + size) for s in start)]
            np.testing.assert_allclose(window, cut, atol=2e-5)
            compared += 1
        else:  # wholly outside the grid: zeros, as the whole-image crop gives
            assert not window.any()
    assert compared == 4  # beyond the grid, NaN and far off: wholly outside


@pytest.mark.parametrize("shape,spacing,target", CASES)
def test_sub_images_equal_those_cut_from_the_whole_image(shape, spacing, target):
    image = tf.constant(_image(shape, 2))
    ndim, n = len(shape), 6
    full, _, _ = resample(normalise_intensity(image), spacing, target)
    centres = np.array([np.array(full.shape[:-1]) * f for f in (0.5, 0.1, 0.93)], np.float32) + 0.37
    want = SubImageCrop(n, ndim)(full[None], centres[None])[0]
    windows, starts = normalised_windows(image, spacing, target, intensity_stats(image), centres, n + 1)
    got = SubImageCrop(n, ndim)(windows, (centres - starts)[:, None, :])[:, 0]
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-5)


def _whole_image_graph(model, image, spacing):
    """GlobalToLocal.call as it was: the whole image normalised and resampled to both spacings."""
    g, loc = model._g, model._l
    x = normalise_intensity(tf.constant(image))
    g_img, g_scale, g_off = resample(x, spacing, g.spacing)
    out = model.global_net(pad_to_multiple(g_img, g.net.total_stride)[None], training=False)
    disp = decode_displacement(out["displacement"], g.net.total_stride, g.displacement_encoding)
    g_pos, _ = WeightedDisplacementAggregation(g.net.total_stride)(disp, out["classification"])
    index = g_off + g_scale * g_pos[0]
    l_img, l_scale, l_off = resample(x, spacing, loc.spacing)
    for _ in range(model.local_iterations):
        index = l_off + l_scale * local_estimates(model.local_net, loc, l_img, (index - l_off) / l_scale)
    return index.numpy()


def test_the_graph_answers_as_the_whole_image_graph_did():
    # Random (untrained) 3D nets: the answers depend on every voxel the graph reads.
    net = NetConfig(stem_filters=4, stem_kernel=3, stage_filters=(8, 8), stage_strides=(2, 1), head_filters=8)
    g = StageConfig(stage="global", ndim=3, spacing=3.0, patch_size=16, net=net)
    local_net = dataclasses.replace(net, stem_stride=1, stage_strides=(2, 2))
    loc = StageConfig(stage="local", ndim=3, spacing=1.0, patch_size=12, net=local_net)
    names = ["a", "b", "c"]
    tf.keras.utils.set_random_seed(4)
    model = GlobalToLocal(build_fcn(3, 3, g.net), build_local_net(3, 3, loc.net, crop_size=12),
                          dataclasses.asdict(g), dataclasses.asdict(loc), names, local_iterations=3)
    image, spacing = _image((14, 40, 36), 3), np.array([2.0, 0.8, 0.9], np.float32)
    got = model({"image": image, "spacing": spacing})["landmarks_index"].numpy()
    np.testing.assert_allclose(got, _whole_image_graph(model, image, spacing), atol=1e-3)
