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


RAMPS = {
    # Down by 2.65 along rows (area-averaged), up by 1/0.77 along columns (bilinear).
    "2d": ((61, 47), (0.37, 1.3), 1.0),
    # Up along slices, down by 2.38 and 1.37 in-plane; the slice axis is resized separately.
    "3d": ((13, 31, 22), (2.0, 0.45, 0.8), 1.1),
}


@pytest.mark.parametrize("name", sorted(RAMPS))
def test_resampled_pixels_lie_where_scale_and_offset_say(name):
    """Channel a holds the input index along axis a; output pixel j must hold offset + scale * j."""
    shape, spacing, target = RAMPS[name]
    ndim = len(shape)
    ramps = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    out, scale, offset = resample(tf.constant(ramps, tf.float32), tf.constant(spacing, tf.float32), target)
    out, scale, offset = out.numpy(), scale.numpy(), offset.numpy()
    size = out.shape[:-1]
    claimed = np.stack(np.meshgrid(*[o + s * np.arange(m) for o, s, m in zip(offset, scale, size)],
                                   indexing="ij"), axis=-1)
    # Border pixels average fewer input pixels (and are pulled inwards); inside, the
    # area kernel sampled at a non-integer ratio wobbles by a few hundredths of a
    # pixel around the claimed position, with no drift (a half-pixel or 1 % scale
    # error would be 0.5 px, or 0.2 px at the far end).
    interior = (slice(1, -1),) * ndim
    error = (out - claimed)[interior]
    assert np.abs(error).max() < 0.06
    assert np.abs(error.mean(axis=tuple(range(ndim)))).max() < 0.005
    # Upsampled axes are interpolated exactly.
    for a in range(ndim):
        if scale[a] < 1:
            np.testing.assert_allclose(error[..., a], 0.0, atol=1e-4)
    # And the documented convention: sizes rounded, scale = N / M, offset = (scale - 1) / 2.
    expected_size = [round(n * s / target) for n, s in zip(shape, spacing)]
    assert list(size) == expected_size
    np.testing.assert_allclose(scale, np.array(shape) / expected_size, rtol=1e-6)
    np.testing.assert_allclose(offset, (scale - 1) / 2, rtol=1e-6)


def test_normalise_is_zero_mean_unit_sd_and_clipped():
    rng = np.random.default_rng(0)
    x = rng.normal(300.0, 40.0, size=(30, 40)).astype(np.float32)
    # Without outliers: exactly a z-score, nothing clipped.
    y = normalise_intensity(tf.constant(x[..., None])).numpy()[..., 0]
    assert abs(y.mean()) < 1e-5 and y.std() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(y, (x - x.mean()) / x.std(), atol=1e-4)
    assert np.abs(y).max() < 5
    # Outliers on both sides: the mean and SD still come from the whole image; every
    # value is its z-score, except those beyond +-5 SD, which are exactly +-5.
    x[3, 4], x[10, 20], x[25, 1] = 1e4, 5e3, -4e3
    y = normalise_intensity(tf.constant(x[..., None])).numpy()[..., 0]
    z = (x.astype(np.float64) - x.mean()) / x.std()
    clipped = np.abs(z) > 5
    assert clipped.sum() == 3 and (z > 5).any() and (z < -5).any()
    np.testing.assert_allclose(y[~clipped], z[~clipped], atol=1e-4)
    np.testing.assert_array_equal(y[clipped], 5.0 * np.sign(z[clipped]))
