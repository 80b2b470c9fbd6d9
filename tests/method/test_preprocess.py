"""Resampling geometry and the padding that keeps FCN cells where the targets put them."""

import numpy as np
import pytest
import tensorflow as tf

from lmk_tf.method.networks import NetConfig, build_fcn
from lmk_tf.method.preprocess import normalise_intensity, pad_to_multiple, resample


def test_pad_to_multiple_pads_at_the_end_only():
    x = tf.reshape(tf.range(5 * 7, dtype=tf.float32), [5, 7, 1])
    y = pad_to_multiple(x, 4)
    assert y.shape == (8, 8, 1)
    np.testing.assert_array_equal(y[:5, :7], x)
    assert float(tf.reduce_sum(tf.abs(y[5:]))) == 0 and float(tf.reduce_sum(tf.abs(y[:, 7:]))) == 0


def test_padded_inputs_give_cells_independent_of_image_size():
    """Interior cells must not move when the image is a few pixels wider or narrower.

    Unpadded, a stride-2 'same' convolution pads odd and even sizes differently,
    which shifted every cell of 194-pixel-wide cephalograms by about 10 mm.
    """
    tf.keras.utils.set_random_seed(0)
    net = build_fcn(2, 1, NetConfig(stem_filters=4, stage_filters=(8, 8, 8), stage_strides=(2, 2, 2)), name="t")
    x = np.random.default_rng(0).normal(size=(1, 64, 104, 1)).astype("float32")
    interior = np.s_[:, 1:3, 1:3]  # cells whose receptive field ends well before column 60

    def cells(n, pad):
        img = x[0, :, :n]
        img = pad_to_multiple(img, 16) if pad else tf.constant(img)
        return net(img[None])["displacement"].numpy()[interior]

    ref = cells(104, pad=True)
    for n in (97, 98, 99, 101):
        np.testing.assert_allclose(cells(n, pad=True), ref, atol=1e-4)
    assert not np.allclose(cells(97, pad=False), cells(104, pad=False), atol=1e-4), \
        "without padding the cells would shift (the test would not guard anything)"


@pytest.mark.parametrize("ndim", [2, 3])
def test_resample_geometry(ndim):
    shape = (40, 30) if ndim == 2 else (12, 16, 20)
    x = tf.random.normal(shape + (1,))
    out, scale, offset = resample(x, tf.constant([0.5] * ndim), 1.0)
    assert out.shape[:-1] == tuple(n // 2 for n in shape)
    np.testing.assert_allclose(scale.numpy(), 2.0)
    np.testing.assert_allclose(offset.numpy(), 0.5)


def test_normalise_is_zero_mean_unit_sd_and_clipped():
    x = tf.constant(np.r_[np.zeros(999), 1e6].reshape(10, 100, 1), tf.float32)
    y = normalise_intensity(x).numpy()
    assert y.max() == pytest.approx(5.0)
