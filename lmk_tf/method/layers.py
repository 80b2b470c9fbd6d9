"""Keras layers of the global-to-local method that must live inside the graph.

All use `keras.ops` only and no Python control flow on tensor values, so they
trace into one SavedModel that TensorFlow Serving loads without custom ops.
Positions are continuous pixel indices of the stage's own grid (array-axis
order); converting to mm is a multiplication by the stage's spacing.
"""

import keras
from keras import ops

from lmk_tf.method.sampling import centred_grid, sample_linear

PACKAGE = "lmk_tf"


def cell_centres(grid_shape, stride):
    """Pixel-index centres of the cells of a stride-`stride` FCN output.

    With 'same' padding, output cell j sees input pixels j*k .. j*k + k - 1, so
    its centre is j*k + (k - 1) / 2. Any fixed convention works, because the
    network learns displacements from whatever centres the targets used; this
    function is the single definition both targets and aggregation use.

    Returns [*grid_shape, ndim] float32.
    """
    axes = [ops.arange(n, dtype="float32") * stride + (stride - 1) / 2.0 for n in grid_shape]
    return ops.stack(ops.meshgrid(*axes, indexing="ij"), axis=-1)


def decode_displacement(raw, stride, encoding):
    """Network output -> displacement in stage pixels.

    'cells': the net predicts displacement / stride (values of order 1).
    'log': sign(d) * log10(|d| + 1), as in the authors' released code.
    """
    if encoding == "cells":
        return raw * float(stride)
    if encoding == "log":
        return ops.sign(raw) * (ops.power(10.0, ops.abs(raw)) - 1.0)
    raise ValueError(f"displacement encoding must be 'cells' or 'log', got {encoding!r}")


def encode_displacement(d, stride, encoding):
    """Inverse of `decode_displacement`: stage pixels -> regression target."""
    if encoding == "cells":
        return d / float(stride)
    if encoding == "log":
        return ops.sign(d) * ops.log(ops.abs(d) + 1.0) / ops.log(10.0)
    raise ValueError(f"displacement encoding must be 'cells' or 'log', got {encoding!r}")


@keras.saving.register_keras_serializable(package=PACKAGE)
class WeightedDisplacementAggregation(keras.layers.Layer):
    """Probability-weighted average of displacement votes: the landmark estimate.

    x_l = sum_i p_il (c_i + d_il) / sum_i p_il, with c_i the cell centres of the
    (dynamic) grid and d_il the displacement predicted by cell i for landmark l.

    Args:
      stride: total stride of the network that made the grid (pixels per cell).
      threshold: optional; cells with p < threshold * max_i p are ignored.
      top_k: optional; only the k most probable cells per landmark vote.
        The paper averages all cells (both None).
      from_logits: the second call argument holds the classification head's
        logits z (p = sigmoid(z)) instead of probabilities. The weights are then
        p_i / max_j p_j computed as exp(log p_i - max_j log p_j), exact even when
        every p_i is far below float32's smallest normal number (a landmark far
        outside the image), where probabilities are already flushed to zero.

    Call arguments:
      displacement: [B, *grid, L * ndim], in stage pixels (already decoded).
      probability: [B, *grid, L], in [0, 1] (logits if `from_logits`).

    Returns:
      [B, L, ndim] positions in stage pixel indices, and [B, L] confidence
      (the summed cell probabilities of each landmark, capped at 1).

    Example:
      >>> agg = WeightedDisplacementAggregation(stride=8)
      >>> pos, conf = agg(displacement, probability)
    """

    def __init__(self, stride, threshold=None, top_k=None, from_logits=False, **kwargs):
        super().__init__(**kwargs)
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1, got {stride!r}")
        if threshold is not None and not 0.0 <= float(threshold) < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
        if top_k is not None and int(top_k) < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k!r}")
        self.stride = int(stride)
        self.threshold = None if threshold is None else float(threshold)
        self.top_k = None if top_k is None else int(top_k)
        self.from_logits = bool(from_logits)

    def call(self, displacement, probability):
        shape = ops.shape(probability)
        ndim = len(probability.shape) - 2
        num_landmarks = probability.shape[-1]
        grid_shape = [shape[1 + a] for a in range(ndim)]
        batch = shape[0]

        centres = ops.reshape(cell_centres(grid_shape, self.stride), (1, -1, 1, ndim))
        disp = ops.reshape(displacement, (batch, -1, num_landmarks, ndim))
        scores = ops.reshape(ops.cast(probability, "float32"), (batch, -1, num_landmarks))
        votes = centres + disp

        if self.from_logits:
            prob = ops.sigmoid(scores)
            log_prob = ops.log_sigmoid(scores)
            weights = ops.exp(log_prob - ops.max(log_prob, axis=1, keepdims=True))
        else:
            prob = scores
            peak = ops.max(prob, axis=1, keepdims=True)
            # Relative to the peak, so the threshold is a fraction of it. When every
            # probability is zero (or a subnormal the CPU flushes to zero) no cell
            # stands out and all vote equally, the limit of equal tiny probabilities.
            weights = ops.where(peak > 0.0, prob / ops.maximum(peak, 1e-30), 1.0)
        if self.threshold is not None:
            weights = ops.where(weights >= self.threshold, weights, 0.0)
        if self.top_k is not None:
            k = ops.minimum(self.top_k, ops.shape(weights)[1])
            ranked = ops.sort(ops.transpose(weights, (0, 2, 1)), axis=-1)
            kth = ops.take(ranked, ops.shape(ranked)[-1] - k, axis=-1)
            weights = ops.where(weights >= ops.expand_dims(kth, 1), weights, 0.0)
        total = ops.maximum(ops.sum(weights, axis=1), 1e-12)
        position = ops.sum(ops.expand_dims(weights, -1) * votes, axis=1) / ops.expand_dims(total, -1)
        # Probability mass, not the peak: a landmark on a cell border splits its
        # probability between neighbours, each well below 0.5.
        confidence = ops.minimum(ops.sum(prob, axis=1), 1.0)
        return position, confidence

    def compute_output_shape(self, displacement_shape, probability_shape):
        batch, num_landmarks = probability_shape[0], probability_shape[-1]
        ndim = len(probability_shape) - 2
        return (batch, num_landmarks, ndim), (batch, num_landmarks)

    def get_config(self):
        config = super().get_config()
        config.update({"stride": self.stride, "threshold": self.threshold, "top_k": self.top_k,
                       "from_logits": self.from_logits})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class SubImageCrop(keras.layers.Layer):
    """Cuts one fixed-size sub-image around each landmark estimate, in the graph.

    Samples with bilinear (2D) or trilinear (3D) interpolation; outside the
    image the value is `fill_value` (0 = the mean after normalisation).

    Args:
      size: sub-image size in pixels per axis (int, same for every axis).
      ndim: 2 or 3.
      fill_value: intensity used outside the image.

    Call arguments:
      image: [B, *spatial, 1], the normalised image at the local stage's spacing.
      centres: [B, L, ndim], crop centres in that image's continuous indices.

    Returns:
      [B, L, *size, 1]. Crop pixel u lies at image index centre + u - (size-1)/2.
    """

    def __init__(self, size, ndim, fill_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if int(ndim) not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
        if int(size) < 2:
            raise ValueError(f"size must be >= 2, got {size!r}")
        self.size = int(size)
        self.ndim = int(ndim)
        self.fill_value = float(fill_value)

    def call(self, image, centres):
        grid = centred_grid(self.size, self.ndim, 1.0)
        expand = (1, 1) + (self.size,) * self.ndim + (self.ndim,)
        centres = ops.reshape(
            ops.cast(centres, "float32"),
            (ops.shape(centres)[0], ops.shape(centres)[1]) + (1,) * self.ndim + (self.ndim,),
        )
        coords = centres + ops.reshape(grid, expand)
        return sample_linear(image, coords, fill_value=self.fill_value)

    def compute_output_shape(self, image_shape, centres_shape):
        return (image_shape[0], centres_shape[1]) + (self.size,) * self.ndim + (image_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "ndim": self.ndim, "fill_value": self.fill_value})
        return config
