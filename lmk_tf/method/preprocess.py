"""Intensity normalisation and resampling, shared by data preparation and the served graph.

`lmk-prepare` runs these eagerly on each training image and the exported
SavedModel runs the very same functions in its graph, so a network never sees
an image prepared differently from the ones it was trained on.

Geometry of a resampled image: output index j along an axis of N input pixels
resized to M lies at input index offset + scale * j, with scale = N / M and
offset = (scale - 1) / 2 (the half-pixel-centre convention of tf.image.resize).
"""

import tensorflow as tf

CLIP = 5.0


def normalise_intensity(image):
    """Z-score over the whole image, clipped to +-5 SD so outliers cannot dominate."""
    x = tf.cast(image, tf.float32)
    mean = tf.reduce_mean(x)
    std = tf.math.reduce_std(x)
    return tf.clip_by_value((x - mean) / tf.maximum(std, 1e-6), -CLIP, CLIP)


def resampled_size(size, spacing, target_spacing):
    """Pixels per axis after resampling `size` pixels of `spacing` to `target_spacing`."""
    size = tf.cast(size, tf.float32)
    n = tf.round(size * tf.cast(spacing, tf.float32) / tf.cast(target_spacing, tf.float32))
    return tf.cast(tf.maximum(n, 1.0), tf.int32)


def resampled_geometry(size_in, spacing, target_spacing):
    """(size_out, scale, offset) of resampling: input index = offset + scale * output index."""
    size_out = resampled_size(size_in, spacing, target_spacing)
    scale = tf.cast(size_in, tf.float32) / tf.cast(size_out, tf.float32)
    return size_out, scale, (scale - 1.0) / 2.0


def resize_axes(image, size):
    """Resizes the two middle axes of a [N, A, B, C] tensor (area-averaged when shrinking)."""
    return tf.image.resize(image, size, method="bilinear", antialias=True)


def resize_first_axis(volume, size):
    """Resizes axis 0 of a [D, H, W, C] tensor to `size` as `resize_axes` would.

    The volume is viewed as one [D, H * W] picture whose second axis keeps its size
    (an exact identity for the triangle kernel): the same values as transposing the
    axis into place and back, without two copies of the volume.
    """
    shape = tf.shape(volume)
    flat = tf.reshape(volume, tf.stack([1, shape[0], shape[1] * shape[2], shape[3]]))
    out = resize_axes(flat, tf.stack([size, shape[1] * shape[2]]))
    return tf.reshape(out, tf.stack([size, shape[1], shape[2], shape[3]]))


def resample(image, spacing, target_spacing):
    """Resamples a [*spatial, C] image (2D or 3D) to `target_spacing` mm.

    Args:
      image: [H, W, C] or [D, H, W, C] float tensor.
      spacing: [ndim] mm per pixel of `image`.
      target_spacing: scalar or [ndim] mm per pixel wanted.

    Returns:
      (resampled, scale, offset): input index = offset + scale * output index,
      per axis; the effective output spacing is spacing * scale.
    """
    ndim = image.shape.rank - 1
    spacing = tf.cast(tf.reshape(spacing, [ndim]), tf.float32)
    target = tf.broadcast_to(tf.cast(target_spacing, tf.float32), [ndim])
    size_out, scale, offset = resampled_geometry(tf.shape(image)[:-1], spacing, target)
    if ndim == 2:
        out = resize_axes(image[None], size_out)[0]
    else:
        # Separable: in-plane first (slices as batch), then along the slice axis.
        out = resize_first_axis(resize_axes(image, size_out[1:]), size_out[0])
    return out, scale, offset


def pad_to_multiple(image, multiple: int):
    """Pads a [*spatial, C] image at the end of each axis to a multiple of `multiple`.

    A strided 'same' convolution pads an odd-sized input differently from an
    even-sized one, which shifts every deeper cell by up to half its size;
    networks trained on patches whose sizes are multiples of the total stride
    must see inputs of such sizes too, or their cell centres drift (by 10 mm
    on 194-pixel-wide cephalograms). Padding at the end keeps indices, and 0
    is the mean intensity after `normalise_intensity`.
    """
    size = tf.shape(image)[:-1]
    padded = (size + multiple - 1) // multiple * multiple
    pads = tf.stack([tf.zeros_like(size), padded - size], axis=1)
    pads = tf.concat([pads, [[0, 0]]], axis=0)
    return tf.pad(image, pads)
