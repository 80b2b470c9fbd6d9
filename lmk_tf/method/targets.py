"""Training targets built in the graph from landmark positions.

For a stride-k FCN on an input whose landmarks sit at continuous pixel indices
x_l, cell i (centre c_i, see `layers.cell_centres`) gets:

* classification target 1 if the landmark lies inside the cell (or within
  `cls_radius` cells of the one that holds it), else 0;
* displacement target x_l - c_i (encoded), used by the loss only where the
  regression mask is 1: cells within `reg_radius` cells of the landmark's cell
  (None: every cell), and only when the landmark is present.

The targets are packed so that Keras' per-output losses can read them:
displacement [*grid, L * (ndim + 1)] = (encoded d, mask) per landmark, and
classification [*grid, L].
"""

import tensorflow as tf

from lmk_tf.method.layers import cell_centres, encode_displacement


def make_targets(points, present, grid_shape, stride, encoding, cls_radius=0, reg_radius=None):
    """Targets for one sample.

    Args:
      points: [L, ndim] landmark positions in input pixel indices.
      present: [L] bool, landmark annotated and inside the input.
      grid_shape: the FCN's output grid (Python ints).
      stride: pixels per cell.
      encoding: displacement encoding ('cells' or 'log').
      cls_radius: cells around the landmark's cell that count as positive.
      reg_radius: cells around it that the regression loss covers (None: all).

    Returns:
      (displacement_target [*grid, L*(ndim+1)], classification_target [*grid, L]).
    """
    points = tf.cast(points, tf.float32)
    num_landmarks, ndim = points.shape[0], points.shape[1]
    present = tf.cast(present, tf.bool)
    points = tf.where(present[:, None], points, tf.zeros_like(points))

    centres = cell_centres(list(grid_shape), stride)  # [*grid, ndim]
    d = points - centres[..., None, :]  # [*grid, L, ndim]
    encoded = encode_displacement(d, stride, encoding)

    own_cell = tf.floor((points + 0.5) / stride)  # [L, ndim]
    cell_index = (centres - (stride - 1) / 2.0) / stride
    chebyshev = tf.reduce_max(tf.abs(cell_index[..., None, :] - own_cell), axis=-1)  # [*grid, L]

    cls = tf.logical_and(chebyshev <= cls_radius, present)
    if reg_radius is None:
        reg = tf.broadcast_to(present, tf.shape(chebyshev))
    else:
        reg = tf.logical_and(chebyshev <= reg_radius, present)
    packed = tf.concat([encoded, tf.cast(reg, tf.float32)[..., None]], axis=-1)
    flat_shape = list(grid_shape) + [num_landmarks * (ndim + 1)]
    return tf.reshape(packed, flat_shape), tf.cast(cls, tf.float32)


def unpack_displacement_target(packed, ndim):
    """[..., L*(ndim+1)] -> (encoded displacement [..., L, ndim], mask [..., L])."""
    shape = tf.shape(packed)
    x = tf.reshape(packed, tf.concat([shape[:-1], [-1, ndim + 1]], 0))
    return x[..., :ndim], x[..., ndim]
