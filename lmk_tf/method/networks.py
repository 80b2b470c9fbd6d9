"""The global and local fully convolutional networks.

Both are residual FCNs with two heads per landmark: `displacement` (ndim values
per landmark and cell, in the encoding of `layers.decode_displacement`) and
`classification` (sigmoid probability that the landmark lies in the cell).
The global net sees the whole (downsampled) image; the local nets see small
sub-images at a finer spacing. The authors' nets are ResNet-34-like; on a
2-core CPU we downsample early and keep few filters at high resolution.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from lmk_tf.errors import ConfigError, ModelError
from lmk_tf.method.config import LOCAL_MODES, NetConfig
from lmk_tf.method.layers import PACKAGE


def _conv(ndim):
    return layers.Conv2D if ndim == 2 else layers.Conv3D


def apply_residual_block(x, ndim, filters, stride, name):
    """Basic ResNet block (two 3x3 convs), projecting the shortcut when needed."""
    conv = _conv(ndim)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = conv(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = conv(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def build_fcn(ndim: int, num_landmarks: int, config: NetConfig, *, input_size=None, name="fcn"):
    """A residual FCN with `displacement` and `classification` outputs.

    Args:
      ndim: 2 or 3.
      num_landmarks: L, the number of landmarks the heads predict.
      config: the network's shape.
      input_size: fixed spatial size, or None for any size (the global net).
      name: model name, also the prefix of its layer names.

    Returns:
      keras.Model mapping [B, *spatial, 1] to {'displacement': [B, *grid, L*ndim],
      'classification': [B, *grid, L]}; grid = spatial / config.total_stride.
    """
    if ndim not in (2, 3):
        raise ConfigError(f"ndim must be 2 or 3, got {ndim!r}")
    if num_landmarks < 1:
        raise ConfigError(f"num_landmarks must be >= 1, got {num_landmarks!r}")
    config.validate()
    conv = _conv(ndim)
    spatial = (None,) * ndim if input_size is None else (int(input_size),) * ndim

    # === Functional Model ===
    inputs = keras.Input(spatial + (1,), name="image")
    x = conv(
        config.stem_filters,
        config.stem_kernel,
        strides=config.stem_stride,
        padding="same",
        use_bias=False,
        name=f"{name}_stem",
    )(inputs)
    x = layers.BatchNormalization(name=f"{name}_stem_bn")(x)
    x = layers.ReLU(name=f"{name}_stem_relu")(x)
    for stage, (filters, stride) in enumerate(zip(config.stage_filters, config.stage_strides)):
        for block in range(config.blocks_per_stage):
            x = apply_residual_block(
                x, ndim, filters, stride if block == 0 else 1, name=f"{name}_s{stage}b{block}"
            )
    h = conv(config.head_filters, 1, activation="relu", name=f"{name}_head")(x)
    displacement = conv(num_landmarks * ndim, 1, name="displacement")(h)
    classification = conv(
        num_landmarks,
        1,
        activation="sigmoid",
        # Start with a low probability everywhere: only one cell in hundreds
        # holds a landmark, and a 0.5 start makes early training chase that.
        bias_initializer=keras.initializers.Constant(-4.0),
        name="classification",
    )(h)
    return keras.Model(
        inputs, {"displacement": displacement, "classification": classification}, name=name
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class FoldLandmarks(keras.layers.Layer):
    """[B, L, *spatial, C] -> [B * L, *spatial, C], so one trunk sees every crop."""

    def call(self, x):
        return ops.reshape(x, (-1,) + tuple(x.shape[2:]))

    def compute_output_shape(self, shape):
        batch = None if shape[0] is None or shape[1] is None else shape[0] * shape[1]
        return (batch,) + tuple(shape[2:])


@keras.saving.register_keras_serializable(package=PACKAGE)
class SelectOwnLandmark(keras.layers.Layer):
    """Keeps, for the crop of landmark l, only the channels of landmark l.

    Input [B * L, *grid, L * width] (crops folded as by FoldLandmarks);
    output [B, L, *grid, width], or [B, L, *grid] when width is 1 and
    `squeeze` is set (the probabilities).
    """

    def __init__(self, num_landmarks, width, squeeze=False, **kwargs):
        super().__init__(**kwargs)
        self.num_landmarks = int(num_landmarks)
        self.width = int(width)
        self.squeeze = bool(squeeze)

    def call(self, x):
        L, w = self.num_landmarks, self.width
        grid = tuple(x.shape[1:-1])
        x = ops.reshape(x, (-1, L) + grid + (L, w))
        eye = ops.reshape(ops.eye(L), (1, L) + (1,) * len(grid) + (L, 1))
        own = ops.sum(x * eye, axis=-2)
        return ops.squeeze(own, -1) if self.squeeze else own

    def compute_output_shape(self, shape):
        batch = None if shape[0] is None else shape[0] // self.num_landmarks
        tail = () if self.squeeze else (self.width,)
        return (batch, self.num_landmarks) + tuple(shape[1:-1]) + tail

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_landmarks": self.num_landmarks, "width": self.width, "squeeze": self.squeeze}
        )
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class TakeLandmark(keras.layers.Layer):
    """[B, L, ...] -> [B, ...] for one landmark index (specialised local nets)."""

    def __init__(self, index, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, x):
        return x[:, self.index]

    def compute_output_shape(self, shape):
        return (shape[0],) + tuple(shape[2:])

    def get_config(self):
        config = super().get_config()
        config.update({"index": self.index})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class StackLandmarks(keras.layers.Layer):
    """A list of L tensors [B, ...] -> [B, L, ...]; drops a trailing 1 if `squeeze`."""

    def __init__(self, squeeze=False, **kwargs):
        super().__init__(**kwargs)
        self.squeeze = bool(squeeze)

    def call(self, xs):
        x = ops.stack(xs, axis=1)
        return ops.squeeze(x, -1) if self.squeeze else x

    def compute_output_shape(self, shapes):
        shape = shapes[0]
        out = (shape[0], len(shapes)) + tuple(shape[1:])
        return out[:-1] if self.squeeze else out

    def get_config(self):
        config = super().get_config()
        config.update({"squeeze": self.squeeze})
        return config


def build_local_net(
    ndim: int, num_landmarks: int, config: NetConfig, *, crop_size: int, mode="shared", name="local_net"
):
    """The local stage: one network per landmark, or one shared trunk.

    'specialised' is the paper's choice: L independent FCNs, each trained only on
    sub-images of its own landmark. 'shared' runs one trunk over all L crops in one
    batch and keeps each crop's own landmark head, which is faster on a CPU.

    Returns:
      keras.Model mapping crops [B, L, *crop, 1] to {'displacement':
      [B, L, *grid, ndim], 'classification': [B, L, *grid]}.
    """
    if mode not in LOCAL_MODES:
        raise ConfigError(f"local mode must be one of {LOCAL_MODES}, got {mode!r}")
    if crop_size % config.total_stride:
        raise ConfigError(
            f"crop_size {crop_size} must be a multiple of the local net's stride "
            f"{config.total_stride}"
        )
    inputs = keras.Input((num_landmarks,) + (crop_size,) * ndim + (1,), name="crops")
    if mode == "shared":
        trunk = build_fcn(ndim, num_landmarks, config, input_size=crop_size, name=f"{name}_trunk")
        out = trunk(FoldLandmarks(name="fold")(inputs))
        disp = SelectOwnLandmark(num_landmarks, ndim, name="displacement")(out["displacement"])
        prob = SelectOwnLandmark(num_landmarks, 1, squeeze=True, name="classification")(
            out["classification"]
        )
    else:
        disps, probs = [], []
        for l in range(num_landmarks):
            net = build_fcn(ndim, 1, config, input_size=crop_size, name=f"{name}_{l}")
            out = net(TakeLandmark(l, name=f"take_{l}")(inputs))
            disps.append(out["displacement"])
            probs.append(out["classification"])
        disp = StackLandmarks(name="displacement")(disps)
        prob = StackLandmarks(squeeze=True, name="classification")(probs)
    return keras.Model(inputs, {"displacement": disp, "classification": prob}, name=name)


CUSTOM_OBJECTS = {cls.__name__: cls for cls in (FoldLandmarks, SelectOwnLandmark, TakeLandmark, StackLandmarks)}


class HeadLogits(keras.layers.Layer):
    """The pre-activation output of a sigmoid convolution head, with its weights shared.

    Only built by `with_logits`; never saved on its own (the wrapped head is).
    """

    def __init__(self, head, **kwargs):
        super().__init__(name=f"{head.name}_logits", **kwargs)
        self.head = head

    def call(self, x):
        y = self.head.convolution_op(x, self.head.kernel)
        return y + self.head.bias if self.head.use_bias else y


def _is_sigmoid_head(layer):
    return (isinstance(layer, (layers.Conv2D, layers.Conv3D))
            and layer.activation is keras.activations.sigmoid)


def with_logits(net):
    """The same network, sharing its layers and weights, with logits as `classification`.

    The served graph weights cell votes by probability; computed from the logits
    (`WeightedDisplacementAggregation(from_logits=True)`) the weights survive
    where float32 probabilities underflow to zero. Every trained stage file holds
    its classification head as a sigmoid convolution, so this view works for
    stage files written before it existed, and training keeps probabilities.

    Args:
      net: a global FCN (`build_fcn`) or local model (`build_local_net`), trained or not.

    Returns:
      keras.Model with the same inputs and output names as `net`.
    """
    found = []

    def call(layer, *args, **kwargs):
        if _is_sigmoid_head(layer):
            found.append(layer.name)
            return HeadLogits(layer)(*args, **kwargs)
        return layer(*args, **kwargs)

    view = keras.models.clone_model(net, clone_function=lambda layer: layer, call_function=call, recursive=True)
    if not found:
        raise ModelError(f"network {net.name!r} has no sigmoid convolution head to take logits from")
    return view
