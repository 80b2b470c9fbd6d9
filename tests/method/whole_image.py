"""The local stage as the paper states it, as a reference for tests: sub-images cut from the whole
image at the local spacing (the served graph cuts them from windows, `lmk_tf.method.windows`)."""

import tensorflow as tf

from lmk_tf.method.layers import SubImageCrop, WeightedDisplacementAggregation, decode_displacement


def local_estimates(net, config, local_image, centres):
    """Local-grid indices [L, ndim] that the local `net`, trained with StageConfig `config`, answers
    from the sub-images centred at `centres` [L, ndim] of `local_image` [*spatial, 1]."""
    centres = tf.convert_to_tensor(centres, tf.float32)
    num, ndim, n, stride = centres.shape[0], config.ndim, config.patch_size, config.net.total_stride
    out = net(SubImageCrop(n, ndim)(local_image[None], centres[None]), training=False)
    grid = out["classification"].shape[2:]
    disp = decode_displacement(out["displacement"], stride, config.displacement_encoding)
    pos, _ = WeightedDisplacementAggregation(stride)(
        tf.reshape(disp, [num, *grid, ndim]), tf.reshape(out["classification"], [num, *grid, 1]))
    return centres + pos[:, 0] - (n - 1) / 2.0
