"""The served graph's resampling of a CT-sized volume, without full-size float32 copies of it.

`resample(normalise_intensity(image), spacing, s)` (lmk_tf.method.preprocess)
makes the normalised image and, at a fine local spacing, a resampled one at
least as large: a 512 x 512 x 300 CT is 300 MiB as float32, and the local
stage at 1 mm made four more such arrays. The graph needs much less of them:
the whole image at the coarse global spacing, and around each estimate a
window of the local-spacing image as big as one sub-image. These functions
compute exactly those, equal to the matching part of the full result (up to
float rounding), while reading the input only piecewise:

* `intensity_stats`: the mean and SD that `normalise_intensity` uses, the SD
  summed one slice at a time;
* `normalised_resample`: the global image, its in-plane pass one slice at a
  time (normalising each slice on the way);
* `normalised_windows`: per landmark the window [start, start + size) of the
  local-spacing grid, from the input region its interpolation kernel reaches.

tf.image.resize (bilinear, antialiased) is the ScaleAndTranslate op with a
triangle kernel, scale = output size / input size and no translation; a
window is the same op with a translation, on a region of the input.
"""

from __future__ import annotations

import tensorflow as tf

from lmk_tf.method.preprocess import CLIP, resampled_geometry, resampled_size, resize_axes, resize_first_axis


def _per_slice(x, fn, element_shape):
    """fn(x[i]) for every slice i, stacked: one slice in memory at a time.

    Not tf.map_fn: it unstacks its input into a TensorArray first, a copy of
    the whole volume.
    """
    n = tf.shape(x)[0]
    out = tf.TensorArray(tf.float32, size=n, element_shape=element_shape)
    _, out = tf.while_loop(lambda i, _: i < n, lambda i, acc: (i + 1, acc.write(i, fn(x[i]))),
                           (tf.constant(0), out), parallel_iterations=4)
    return out.stack()


def intensity_stats(image):
    """(mean, SD) of `image` as `normalise_intensity` takes them; 3D: no full-size temporary."""
    x = tf.cast(image, tf.float32)
    mean = tf.reduce_mean(x)
    if x.shape.rank == 3:  # a 2D image: small enough
        return mean, tf.math.reduce_std(x)
    squares = _per_slice(x, lambda s: tf.reduce_sum(tf.square(s - mean)), tf.TensorShape([]))
    count = tf.cast(tf.size(x), tf.float32)
    return mean, tf.sqrt(tf.reduce_sum(squares) / count)


def normalise_with(x, stats):
    """`normalise_intensity` of a part of an image, with the whole image's (mean, SD)."""
    mean, std = stats
    return tf.clip_by_value((tf.cast(x, tf.float32) - mean) / tf.maximum(std, 1e-6), -CLIP, CLIP)


def normalised_resample(image, spacing, target_spacing, stats):
    """`resample(normalise_intensity(image), spacing, target_spacing)`, slice by slice in 3D.

    Returns (resampled, scale, offset) as `resample` does.
    """
    ndim = image.shape.rank - 1
    spacing = tf.cast(tf.reshape(spacing, [ndim]), tf.float32)
    target = tf.broadcast_to(tf.cast(target_spacing, tf.float32), [ndim])
    size_out, scale, offset = resampled_geometry(tf.shape(image)[:-1], spacing, target)
    if ndim == 2:
        out = resize_axes(normalise_with(image, stats)[None], size_out)[0]
    else:
        # The in-plane pass treats slices independently, so one at a time gives the same values.
        inplane = _per_slice(image, lambda s: resize_axes(normalise_with(s, stats)[None], size_out[1:])[0],
                             tf.TensorShape([None, None, image.shape[-1]]))
        out = resize_first_axis(inplane, size_out[0])
    return out, scale, offset


def _scale_translate(images, size, scale, translation):
    return tf.raw_ops.ScaleAndTranslate(images=images, size=size, scale=scale, translation=translation,
                                        kernel_type="triangle", antialias=True)


def _window(image, stats, size_out, start, size: int):
    """One window of the normalised image resampled to `size_out` voxels per axis, 0 outside that grid."""
    ndim = image.shape.rank - 1
    size_in = tf.shape(image)[:-1]
    n_in, n_out = tf.cast(size_in, tf.float32), tf.cast(size_out, tf.float32)
    scale = n_out / n_in  # the op's scale: output pixels per input pixel
    start_f = tf.cast(start, tf.float32)
    # The input pixels the triangle kernel reaches from the window's outputs
    # (radius max(1, 1/scale) input pixels around (o + 0.5) / scale), plus slack.
    reach = tf.maximum(1.0 / scale, 1.0)
    lo = tf.floor((start_f + 0.5) / scale - reach - 0.5) - 1.0
    hi = tf.math.ceil((start_f + size - 0.5) / scale + reach - 0.5) + 2.0
    lo = tf.cast(tf.clip_by_value(lo, 0.0, n_in - 1.0), tf.int32)
    hi = tf.maximum(tf.cast(tf.clip_by_value(hi, 0.0, n_in), tf.int32), lo + 1)
    region = normalise_with(tf.slice(image, tf.concat([lo, [0]], 0), tf.concat([hi - lo, [-1]], 0)), stats)
    # Output u of the window is output start + u of the full grid, and the region starts at input lo.
    translation = tf.cast(lo, tf.float32) * scale - start_f
    if ndim == 2:
        out = _scale_translate(region[None], [size, size], scale, translation)[0]
    else:
        x = _scale_translate(region, [size, size], scale[1:], translation[1:])
        x = _scale_translate(tf.transpose(x, [1, 0, 2, 3]), [size, size], tf.stack([scale[0], 1.0]),
                             tf.stack([translation[0], 0.0]))
        out = tf.transpose(x, [1, 0, 2, 3])
    for a in range(ndim):
        index = start[a] + tf.range(size)
        inside = tf.cast((index >= 0) & (index < size_out[a]), tf.float32)
        out = out * tf.reshape(inside, [-1 if b == a else 1 for b in range(ndim)] + [1])
    return out


def normalised_windows(image, spacing, target_spacing, stats, centres, size: int):
    """Windows of `resample(normalise_intensity(image), spacing, target_spacing)` around `centres`.

    Args:
      image: [*spatial, C], the input as served.
      spacing: [ndim] its mm per voxel.
      target_spacing: the local stage's spacing.
      stats: `intensity_stats(image)`.
      centres: [L, ndim] continuous indices in the resampled grid.
      size: window size per axis; a sub-image of n voxels centred anywhere
        lies in the window of size n + 1 that `starts` gives.

    Returns:
      (windows [L, size, ..., C], starts [L, ndim] float32): window l holds
      the resampled grid's voxels starts[l] .. starts[l] + size - 1 (0 beyond
      the grid, as `SubImageCrop` fills outside the image).
    """
    ndim = image.shape.rank - 1
    spacing = tf.cast(tf.reshape(spacing, [ndim]), tf.float32)
    size_out = resampled_size(tf.shape(image)[:-1], spacing, tf.broadcast_to(
        tf.cast(target_spacing, tf.float32), [ndim]))
    # Non-finite or far-off centres: a window wholly outside the grid, all zeros, as before.
    limit = tf.cast(size_out, tf.float32) + size + 2.0
    centres = tf.where(tf.math.is_finite(centres), centres, -limit)
    starts = tf.floor(tf.clip_by_value(centres, -limit, limit) - (size - 2) / 2.0)
    windows = tf.map_fn(
        lambda s: _window(image, stats, size_out, s, size), tf.cast(starts, tf.int32),
        fn_output_signature=tf.TensorSpec([size] * ndim + [image.shape[-1]], tf.float32))
    return windows, starts
