"""Check a request against the loaded signature before TensorFlow sees it.

TensorFlow's own errors for a bad input are long, name graph nodes, and some
(a huge image, a NaN that propagates) only show up after seconds of work or not
at all. So every input is checked here first - names, dtype, rank, fixed
dimensions, size, finite values, and the landmark contract (`spacing` has one
positive value per image axis, the image has >= 2 pixels per axis) - and each
error names the input. TensorFlow errors that still happen during the call are
mapped to a status code so the server never dies on a request.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from lmk_tf.serving.status import Internal, InvalidArgument, ResourceExhausted

# 64 Mi elements: a 512^3 float32 volume (512 MiB) is the largest accepted by default.
DEFAULT_MAX_ELEMENTS = 64 * 2**20
# No modality has more than 65536 pixels along one axis; larger is a corrupt header.
DEFAULT_MAX_DIM = 65536


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits applied to every input tensor of a request.

    Attributes:
      max_elements: most elements (pixels/voxels) in one input tensor.
      max_dim: most elements along one axis.
    """

    max_elements: int = DEFAULT_MAX_ELEMENTS
    max_dim: int = DEFAULT_MAX_DIM


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One signature input: name, numpy dtype and shape (None = any size/rank)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...] | None

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.dtype.name} of any shape"
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype.name} [{dims}]"


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
    """What a signature takes and returns."""

    inputs: dict[str, InputSpec]
    outputs: tuple[str, ...]


def spec_from_function(fn) -> SignatureSpec:
    """The spec of a loaded signature (a ConcreteFunction from `.signatures`)."""
    _, kwargs = fn.structured_input_signature
    inputs = {}
    for name, tensor_spec in kwargs.items():
        shape = None if tensor_spec.shape.rank is None else tuple(tensor_spec.shape.as_list())
        inputs[name] = InputSpec(name, np.dtype(tensor_spec.dtype.as_numpy_dtype), shape)
    outputs = tuple(sorted(fn.structured_outputs.keys()))
    return SignatureSpec(inputs=inputs, outputs=outputs)


def _fmt_shape(shape) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _check_names(spec: SignatureSpec, names) -> None:
    expected = sorted(spec.inputs)
    unknown = sorted(set(names) - set(spec.inputs))
    if unknown:
        raise InvalidArgument(
            f"unknown input {unknown[0]!r}; the signature takes {', '.join(map(repr, expected))}"
        )
    missing = [n for n in expected if n not in names]
    if missing:
        raise InvalidArgument(
            f"missing input {missing[0]!r}; the signature takes {', '.join(map(repr, expected))}"
        )


def _check_shape(spec: InputSpec, shape: tuple[int, ...], limits: Limits) -> None:
    """Rank, fixed dims and size limits, from the shape alone (before decoding)."""
    if any(d < 0 for d in shape):
        raise InvalidArgument(f"input {spec.name!r} has a negative dimension: {_fmt_shape(shape)}")
    if spec.shape is not None:
        if len(shape) != len(spec.shape):
            raise InvalidArgument(
                f"input {spec.name!r} must have rank {len(spec.shape)} ({spec.describe()}), "
                f"got shape {_fmt_shape(shape)}"
            )
        for axis, (want, got) in enumerate(zip(spec.shape, shape)):
            if want is not None and want != got:
                raise InvalidArgument(
                    f"input {spec.name!r} must have size {want} along axis {axis} "
                    f"({spec.describe()}), got shape {_fmt_shape(shape)}"
                )
    for d in shape:
        if d > limits.max_dim:
            raise InvalidArgument(
                f"input {spec.name!r} has shape {_fmt_shape(shape)}; at most "
                f"{limits.max_dim} elements per axis are accepted"
            )
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count > limits.max_elements:
        raise InvalidArgument(
            f"input {spec.name!r} has {count} elements (shape {_fmt_shape(shape)}), more than "
            f"the server's limit of {limits.max_elements} (--max_image_elements)"
        )


def _check_values(spec: InputSpec, value: np.ndarray) -> None:
    if np.issubdtype(value.dtype, np.floating) and value.size:
        finite = np.isfinite(value)
        if not finite.all():
            bad = np.argwhere(~finite)
            first = tuple(int(i) for i in bad[0])
            raise InvalidArgument(
                f"input {spec.name!r} has {len(bad)} non-finite values (NaN or inf), "
                f"the first at index {list(first)}"
            )


def _check_contract(spec: SignatureSpec, inputs: Mapping[str, np.ndarray]) -> None:
    """The landmark contract: image [...spatial, 1] with >= 2 px per axis, spacing > 0."""
    if "image" in inputs:
        image = inputs["image"]
        spatial = image.shape[:-1]
        if any(d < 2 for d in spatial):
            raise InvalidArgument(
                f"input 'image' must be at least 2 pixels along every axis, "
                f"got shape {_fmt_shape(image.shape)}"
            )
    if "spacing" in inputs:
        spacing = inputs["spacing"]
        if "image" in inputs:
            ndim = inputs["image"].ndim - 1
            if spacing.shape != (ndim,):
                raise InvalidArgument(
                    f"input 'spacing' must have shape [{ndim}] for an image of shape "
                    f"{_fmt_shape(inputs['image'].shape)}, got {_fmt_shape(spacing.shape)}"
                )
        if np.any(spacing <= 0):
            values = [float(v) for v in np.ravel(spacing)]
            raise InvalidArgument(f"input 'spacing' must be > 0, got {values}")


def validate_arrays(
    spec: SignatureSpec, inputs: Mapping[str, Any], limits: Limits = Limits(), *, cast: bool = False
) -> dict[str, np.ndarray]:
    """Check numpy (or nested list) inputs; returns them as arrays of the spec's dtype.

    Args:
      spec: the signature's inputs.
      inputs: name -> array-like.
      limits: size limits.
      cast: convert values to the spec dtype (JSON and Python lists carry no
        dtype); when False a numpy array of another dtype is an error, as in
        TF Serving's gRPC API.
    """
    _check_names(spec, inputs.keys())
    arrays = {}
    for name, value in inputs.items():
        input_spec = spec.inputs[name]
        if cast or not isinstance(value, np.ndarray):
            try:
                array = np.asarray(value, dtype=input_spec.dtype)
            except (TypeError, ValueError) as e:
                raise InvalidArgument(
                    f"input {name!r} cannot be read as {input_spec.describe()}: {e}"
                ) from None
        else:
            array = value
            if array.dtype != input_spec.dtype:
                raise InvalidArgument(
                    f"input {name!r} must be {input_spec.dtype.name}, got {array.dtype.name}"
                )
        _check_shape(input_spec, array.shape, limits)
        _check_values(input_spec, array)
        arrays[name] = array
    _check_contract(spec, arrays)
    return arrays


def validate_tensor_protos(
    spec: SignatureSpec, protos: Mapping[str, Any], limits: Limits = Limits()
) -> dict[str, np.ndarray]:
    """Check TensorProtos of a PredictRequest and decode them to numpy.

    Dtype, rank and size are checked from the proto's header, so an oversized
    or mistyped tensor is refused before its content is decoded.
    """
    _check_names(spec, protos.keys())
    arrays = {}
    for name, proto in protos.items():
        input_spec = spec.inputs[name]
        try:
            got = tf.dtypes.as_dtype(proto.dtype)
            got_name = got.name
            got_np = np.dtype(got.as_numpy_dtype) if got.is_numpy_compatible else None
        except TypeError:
            got_name, got_np = f"dtype enum {proto.dtype}", None
        if got_np != input_spec.dtype:
            raise InvalidArgument(f"input {name!r} must be {input_spec.dtype.name}, got {got_name}")
        if proto.tensor_shape.unknown_rank:
            raise InvalidArgument(f"input {name!r} has no shape (unknown rank)")
        shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
        _check_shape(input_spec, shape, limits)
        try:
            array = tf.make_ndarray(proto)
        except Exception as e:
            raise InvalidArgument(
                f"input {name!r}: tensor content does not match shape {_fmt_shape(shape)}: {e}"
            ) from None
        if array.shape != shape:
            raise InvalidArgument(
                f"input {name!r}: tensor content does not match shape {_fmt_shape(shape)}"
            )
        _check_values(input_spec, array)
        arrays[name] = array
    _check_contract(spec, arrays)
    return arrays


def call_signature(fn, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a loaded signature on validated inputs, mapping TF errors to status codes."""
    try:
        outputs = fn(**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: tensor.numpy() for name, tensor in outputs.items()}
    except tf.errors.InvalidArgumentError as e:
        raise InvalidArgument(f"the model rejected the request: {_first_line(e.message)}") from None
    except tf.errors.ResourceExhaustedError as e:
        raise ResourceExhausted(f"out of memory running the model: {_first_line(e.message)}") from None
    except (tf.errors.OpError, ValueError, TypeError) as e:
        raise Internal(f"the model failed: {_first_line(str(e))}") from None


def _first_line(message: str) -> str:
    """The cause in a TF op error, without "Graph execution error", node names or stacks."""
    skip = ("Graph execution error", "Detected at node", "<stack traces")
    lines = [
        line for line in message.splitlines()
        if line.strip() and not line.startswith((" ", "\t")) and not line.startswith(skip)
    ]
    line = (lines or [message.strip() or "(no message)"])[0]
    return re.sub(r"\s*\[Op:[^\]]*\]$", "", line).strip()
