"""Linear interpolation of 2D/3D images at arbitrary continuous indices.

One mechanism serves three jobs: cutting the local sub-images around the global
estimates (in the served graph), and the random rotation/scale/translation crops
of the training pipelines (in tf.data). Using the same code for both keeps the
geometry the networks see in training identical to what they see when served.

Only `keras.ops` is used, with gathers on a flattened image, so the functions run
inside a Keras layer, a tf.function or a tf.data map alike.
"""

import itertools

from keras import ops


def sample_linear(image, coords, fill_value=0.0):
    """Samples `image` at continuous array indices with (bi/tri)linear weights.

    Args:
      image: [B, *spatial, C] float tensor, spatial rank 2 or 3.
      coords: [B, *out, ndim] continuous indices into `spatial` (array-axis
        order; index i is the centre of pixel i).
      fill_value: value of the image outside its grid. Neighbours outside the
        grid contribute this value, so the result fades smoothly at the border.

    Returns:
      [B, *out, C] samples.
    """
    ndim = len(image.shape) - 2
    spatial = ops.shape(image)[1:-1]
    channels = ops.shape(image)[-1]
    batch = ops.shape(image)[0]
    out_shape = ops.shape(coords)[1:-1]

    coords = ops.reshape(ops.cast(coords, "float32"), (batch, -1, ndim))
    flat = ops.reshape(ops.cast(image, "float32"), (-1, channels))
    floor = ops.floor(coords)
    frac = coords - floor
    floor = ops.cast(floor, "int32")

    sizes = [ops.cast(spatial[a], "int32") for a in range(ndim)]
    # Row-major strides of the flattened [B, *spatial] index space.
    strides = [None] * ndim
    acc = ops.convert_to_tensor(1, "int32")
    for a in reversed(range(ndim)):
        strides[a] = acc
        acc = acc * sizes[a]
    batch_offset = ops.reshape(ops.arange(batch, dtype="int32") * acc, (-1, 1))

    total = 0.0
    for corner in itertools.product((0, 1), repeat=ndim):
        weight = 1.0
        inside = None
        linear = batch_offset
        for a, bit in enumerate(corner):
            idx = floor[..., a] + bit
            w = frac[..., a] if bit else 1.0 - frac[..., a]
            weight = weight * w
            ok = ops.logical_and(idx >= 0, idx < sizes[a])
            inside = ok if inside is None else ops.logical_and(inside, ok)
            linear = linear + ops.clip(idx, 0, sizes[a] - 1) * strides[a]
        values = ops.take(flat, ops.reshape(linear, (-1,)), axis=0)
        values = ops.reshape(values, (batch, -1, channels))
        values = ops.where(ops.expand_dims(inside, -1), values, fill_value)
        total = total + ops.expand_dims(weight, -1) * values
    return ops.reshape(total, (batch,) + tuple(out_shape) + (channels,))


def centred_grid(size, ndim, step):
    """Offsets (in units of `step`) of a `size`^ndim grid centred on zero.

    Returns a [*size, ndim] float32 tensor: for output pixel u, (u - (n-1)/2) * step.
    `step` is a scalar or an [ndim] tensor.
    """
    sizes = [size] * ndim if isinstance(size, int) else list(size)
    axes = [ops.arange(n, dtype="float32") - (n - 1) / 2.0 for n in sizes]
    mesh = ops.meshgrid(*axes, indexing="ij")
    grid = ops.stack(mesh, axis=-1)
    return grid * ops.cast(step, "float32")
