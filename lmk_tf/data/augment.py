"""Random appearance changes of training patches: the range real images differ by.

Cephalograms differ in exposure, contrast, sharpness and field of view from
machine to machine. The geometric part (rotation, zoom, translation) lives in
`datasets.random_transform`; this module changes what the pixels look like and
cuts the field of view. Every function is stateless and seeded, so a pipeline
replays identically.
"""

from __future__ import annotations

import math

import tensorflow as tf


def seeds(seed, n):
    """n independent stateless seeds derived from one."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def intensity(x, seed):
    """Random contrast, brightness and Gaussian noise on a normalised image."""
    s1, s2, s3, s4 = seeds(seed, 4)
    contrast = tf.random.stateless_uniform([], s1, 0.8, 1.25)
    brightness = tf.random.stateless_uniform([], s2, -0.25, 0.25)
    noise_sd = tf.random.stateless_uniform([], s3, 0.0, 0.1)
    noise = tf.random.stateless_normal(tf.shape(x), s4) * noise_sd
    return x * contrast + brightness + noise


def gamma(x, seed, gamma_range):
    """A random gamma curve (log-uniform in `gamma_range`), keeping the mean and SD of `x`.

    Patches come from images that were z-scored when prepared; the curve is
    applied to their [0, 1] rescaling and the result is put back on the same
    scale, so the served graph's own normalisation sees what it would see for
    a real image taken with another exposure curve.
    """
    lo, hi = math.log(gamma_range[0]), math.log(gamma_range[1])
    g = tf.exp(tf.random.stateless_uniform([], seed, lo, hi))
    x_min, x_max = tf.reduce_min(x), tf.reduce_max(x)
    u = (x - x_min) / tf.maximum(x_max - x_min, 1e-6)
    y = tf.pow(u, g)
    mean_x, var_x = tf.nn.moments(x, axes=list(range(len(x.shape))))
    mean_y, var_y = tf.nn.moments(y, axes=list(range(len(x.shape))))
    return (y - mean_y) * tf.sqrt(var_x / tf.maximum(var_y, 1e-12)) + mean_x


def blur(x, seed, max_sigma_px: float, ndim: int):
    """Gaussian blur with a random sigma in [0, max_sigma_px], separable.

    `x` is [*spatial, 1] or [N, *spatial, 1]. The kernel's radius is fixed by
    the largest sigma so the graph has static shapes; a sigma near 0 gives a
    kernel that is 1 at the centre.
    """
    batched = len(x.shape) == ndim + 2
    y = x if batched else x[None]
    sigma = tf.maximum(tf.random.stateless_uniform([], seed, 0.0, max_sigma_px), 1e-3)
    radius = max(1, int(math.ceil(3.0 * max_sigma_px)))
    t = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(t / sigma))
    kernel = kernel / tf.reduce_sum(kernel)
    for axis in range(ndim):
        shape = [1] * ndim + [1, 1]
        shape[axis] = 2 * radius + 1
        y = tf.nn.convolution(y, tf.reshape(kernel, shape), padding="SAME")
    return y if batched else y[0]


def field_cut(seed, size: int, max_fraction: float, probability: float = 0.5):
    """Rows [0, top) and [size - bottom, size) of a patch that a cut field of view removes.

    Real images may stop above the chin or below the skull top. With
    `probability`, one side (top or bottom, equally likely) loses up to
    `max_fraction` of the patch's rows along axis 0. Returns (top, bottom) in
    pixels as float32 scalars (0 where nothing is cut).
    """
    s_apply, s_side, s_frac = seeds(seed, 3)
    apply = tf.random.stateless_uniform([], s_apply) < probability
    top_side = tf.random.stateless_uniform([], s_side) < 0.5
    rows = tf.floor(tf.random.stateless_uniform([], s_frac, 0.0, max_fraction) * size)
    rows = tf.where(apply, rows, 0.0)
    return tf.where(top_side, rows, 0.0), tf.where(top_side, 0.0, rows)


def apply_cut(x, top, bottom, size: int, fill_value: float = 0.0):
    """Sets the cut rows of a [size, ..., 1] patch to the fill value (the image mean)."""
    rows = tf.range(size, dtype=tf.float32)
    keep = (rows >= top) & (rows < size - bottom)
    keep = tf.reshape(keep, [size] + [1] * (len(x.shape) - 1))
    return tf.where(keep, x, fill_value)


# The darkest canvas, in units of the image's SD below its mean: a detector's unexposed
# border is near black, 2-3 SD under the mean of a cephalogram.
DARKEST_CANVAS = -2.5


def canvas_value(seed, probability: float):
    """The fill outside the image for one patch: 0 (the mean), or with `probability` a dark value."""
    s_on, s_value = seeds(seed, 2)
    on = tf.random.stateless_uniform([], s_on) < probability
    value = tf.random.stateless_uniform([], s_value, DARKEST_CANVAS, 0.0)
    return tf.where(on, value, 0.0), on


def renormalise(x, on):
    """x normalised again over itself when `on`: the served graph normalises the whole image, canvas included."""
    mean, sd = tf.reduce_mean(x), tf.math.reduce_std(x)
    return tf.where(on, (x - mean) / tf.maximum(sd, 1e-6), x)
