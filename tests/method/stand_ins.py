"""Stand-in stage networks whose outputs are the exact targets, for geometry tests.

The test image is a quadratic bowl f(x) = |x - p|^2 (x in mm) around each
landmark p. Normalisation is affine, and resampling by an integer size ratio
or bilinear sampling at a fixed sub-pixel offset keeps f quadratic up to a
constant away from the borders, so one Newton step on three neighbouring
pixels gives the bowl's minimum exactly, in the coordinates of whatever image
the network sees. The stand-ins therefore read the landmark from their input,
as trained networks do, and never from the geometry conventions under test:
if the graph resampled, padded, cropped or mapped back with a half-pixel, scale
or offset error, its answer would miss the truth.

Both are functional models with a sigmoid convolution head, like the real
networks, so `networks.with_logits` applies to them unchanged.
"""

import keras
import numpy as np
import tensorflow as tf

from lmk_tf.method.layers import cell_centres, encode_displacement

FAR = -30.0  # logit of every cell that does not hold the landmark (p ~ 1e-13)


def bowl_image(shape, spacing, points_mm):
    """min_l |x - p_l|^2 in mm^2 at pixel x (pixel i is centred at i * spacing mm)."""
    axes = [np.arange(n) * s for n, s in zip(shape, spacing)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    dist = [np.sum((mesh - np.asarray(p)) ** 2, axis=-1) for p in points_mm]
    return np.min(dist, axis=0).astype(np.float32)


def _newton_minimum(x, start):
    """Minimum of a separable quadratic from the 3-pixel stencils around `start` ([ndim] int)."""
    ndim = len(x.shape)
    position = []
    for a in range(ndim):
        step = tf.one_hot(a, ndim, dtype=tf.int32)
        f0 = tf.gather_nd(x, start)
        fp = tf.gather_nd(x, start + step)
        fm = tf.gather_nd(x, start - step)
        position.append(tf.cast(start[a], tf.float32) - (fp - fm) / (2.0 * (fp - 2.0 * f0 + fm)))
    return tf.stack(position)


def _heads(point, grid, stride, encoding, logit, far=FAR):
    """Exact displacement targets of every cell, and logits: `logit` in the point's cell, else `far`."""
    centres = cell_centres(grid, stride)
    disp = encode_displacement(point - centres, stride, encoding)
    grid_max = tf.cast(tf.stack(grid), tf.float32) - 1.0
    own = tf.clip_by_value(tf.floor((point + 0.5) / stride), 0.0, grid_max)
    index = (centres - (stride - 1) / 2.0) / stride
    hit = tf.reduce_all(tf.equal(index, own), axis=-1)
    return disp, tf.where(hit, logit, far)


class GlobalBowl(keras.layers.Layer):
    """Global heads: landmark l is the bowl minimum found from pixel starts[l] * input size.

    `bias_px` is added to every estimate (global stage pixels), to leave the local
    stage something to correct.
    """

    def __init__(self, stride, starts, logit, far=FAR, bias_px=0.0, encoding="cells", **kwargs):
        super().__init__(**kwargs)
        self.stride, self.starts, self.logit, self.far = stride, starts, logit, far
        self.bias_px, self.encoding = bias_px, encoding

    def call(self, image):
        x = image[0, ..., 0]
        ndim = len(x.shape)
        size = tf.shape(x)
        grid = [size[a] // self.stride for a in range(ndim)]
        disps, logits = [], []
        for frac in self.starts:
            start = tf.cast(tf.floor(tf.constant(frac, tf.float32) * tf.cast(size, tf.float32)), tf.int32)
            point = _newton_minimum(x, start) + self.bias_px
            disp, logit = _heads(point, grid, self.stride, self.encoding, self.logit, self.far)
            disps.append(disp)
            logits.append(logit)
        return tf.concat(disps, axis=-1)[None], tf.stack(logits, axis=-1)[None]

    def compute_output_shape(self, shape):
        grid = tuple(None if n is None else n // self.stride for n in shape[1:-1])
        n = len(self.starts)
        return (1,) + grid + (n * len(grid),), (1,) + grid + (n,)


class LocalBowl(keras.layers.Layer):
    """Local heads: each crop's bowl minimum, approached by the fraction `gain` from the crop centre."""

    def __init__(self, stride, logit, gain=1.0, encoding="cells", **kwargs):
        super().__init__(**kwargs)
        self.stride, self.logit, self.gain, self.encoding = stride, logit, gain, encoding

    def call(self, crops):
        num_landmarks, size = crops.shape[1], crops.shape[2]
        ndim = len(crops.shape) - 3
        grid = [size // self.stride] * ndim
        centre = (size - 1) / 2.0
        disps, logits = [], []
        for l in range(num_landmarks):
            x = crops[0, l, ..., 0]
            found = _newton_minimum(x, tf.constant([size // 2] * ndim, tf.int32))
            # A crop entirely outside the image is flat: stay at its centre.
            found = tf.where(tf.math.is_finite(found), found, centre)
            point = centre + self.gain * (found - centre)
            disp, logit = _heads(point, grid, self.stride, self.encoding, self.logit)
            disps.append(disp)
            logits.append(logit[..., None])
        return tf.stack(disps)[None], tf.stack(logits)

    def compute_output_shape(self, shape):
        grid = (shape[2] // self.stride,) * (len(shape) - 3)
        return (1, shape[1]) + grid + (len(grid),), (shape[1],) + grid + (1,)


class Unfold(keras.layers.Layer):
    """[L, *grid, 1] -> [1, L, *grid]."""

    def call(self, x):
        return tf.squeeze(x, -1)[None]

    def compute_output_shape(self, shape):
        return (1,) + tuple(shape[:-1])


def _sigmoid_head(ndim, channels, name):
    conv = keras.layers.Conv2D if ndim == 2 else keras.layers.Conv3D
    return conv(channels, 1, activation="sigmoid", name=name)


def _identity(conv, channels, ndim):
    conv.set_weights([np.eye(channels, dtype=np.float32).reshape((1,) * ndim + (channels, channels)),
                      np.zeros(channels, np.float32)])


def logit(p):
    return float(np.log(p) - np.log1p(-p))


def global_bowl_net(ndim, stride, starts, *, confidence=0.9, far=FAR, bias_px=0.0, encoding="cells"):
    """Global stand-in: {'displacement', 'classification'} for any input size.

    The landmark's cell has probability `confidence`, every other cell logit `far`.
    """
    num_landmarks = len(starts)
    inputs = keras.Input((None,) * ndim + (1,))
    disp, logits = GlobalBowl(stride, starts, logit(confidence), far, bias_px, encoding)(inputs)
    head = _sigmoid_head(ndim, num_landmarks, "classification")
    prob = head(logits)
    _identity(head, num_landmarks, ndim)
    return keras.Model(inputs, {"displacement": disp, "classification": prob}, name="global_bowl")


def local_bowl_net(ndim, num_landmarks, crop_size, stride, *, confidence=0.8, gain=1.0, encoding="cells"):
    """Local stand-in: crops [1, L, *n, 1] -> {'displacement', 'classification'}."""
    inputs = keras.Input((num_landmarks,) + (crop_size,) * ndim + (1,), batch_size=1)
    disp, logits = LocalBowl(stride, logit(confidence), gain, encoding)(inputs)
    head = _sigmoid_head(ndim, 1, "classification_head")
    prob = Unfold(name="classification")(head(logits))
    _identity(head, 1, ndim)
    return keras.Model(inputs, {"displacement": disp, "classification": prob}, name="local_bowl")
