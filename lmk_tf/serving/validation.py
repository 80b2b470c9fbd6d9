"""A request checked against the loaded signature, then the signature called.

The signature's TensorSpecs (`structured_input_signature`) say which inputs it
takes, their dtype and which dimensions are fixed; `check` enforces exactly
that from a tensor's dtype and shape alone, with the size limits, so a
mistyped or oversized tensor is refused before it is decoded or allocated.
Non-finite floats are refused with the input and the first bad index (in the
graph a NaN would only propagate). What the model needs beyond its specs -
spacing > 0, at least 2 pixels per axis - the exported graph asserts itself
with tf.debugging, as stock TF Serving (which validates nothing) relies on;
`call` answers a failed assert with INVALID_ARGUMENT and the assert's message.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from lmk_tf.serving.status import Internal, InvalidArgument, ResourceExhausted


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits of every input tensor.

    Attributes:
      max_elements: most elements in one tensor (64 Mi: a 512^3 float32 volume).
      max_dim: most elements along one axis (no modality has more than 65536
        pixels along an axis; more is a corrupt header).
    """

    max_elements: int = 64 * 2**20
    max_dim: int = 65536


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
    """A loaded signature's inputs: name -> tf.TensorSpec."""

    inputs: dict[str, tf.TensorSpec]

    @classmethod
    def of(cls, fn) -> SignatureSpec:
        return cls(dict(fn.structured_input_signature[1]))


def _text(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check(name: str, spec: tf.TensorSpec, dtype: str, shape: tuple[int, ...], limits: Limits) -> None:
    """One input's dtype name and shape against its TensorSpec and the limits."""
    if dtype != spec.dtype.name:
        raise InvalidArgument(f"input {name!r} must be {spec.dtype.name}, got {dtype}")
    if any(d < 0 for d in shape):
        raise InvalidArgument(f"input {name!r} has a negative dimension: {_text(shape)}")
    if spec.shape.rank is not None:
        dims = spec.shape.as_list()
        want = f"({spec.dtype.name} {_text('?' if d is None else d for d in dims)}), got shape {_text(shape)}"
        if len(shape) != len(dims):
            raise InvalidArgument(f"input {name!r} must have rank {len(dims)} {want}")
        for axis, (size, got) in enumerate(zip(dims, shape)):
            if size is not None and size != got:
                raise InvalidArgument(f"input {name!r} must have size {size} along axis {axis} {want}")
    if max(shape, default=0) > limits.max_dim:
        raise InvalidArgument(f"input {name!r} has shape {_text(shape)}; at most "
                              f"{limits.max_dim} elements per axis are accepted")
    if math.prod(shape) > limits.max_elements:
        raise InvalidArgument(
            f"input {name!r} has {math.prod(shape)} elements (shape {_text(shape)}), more than "
            f"the server's limit of {limits.max_elements} (--max_image_elements)")


def _check_names(spec: SignatureSpec, names) -> None:
    takes = ", ".join(map(repr, sorted(spec.inputs))) or "no inputs"
    for problem, found in (("unknown", set(names) - set(spec.inputs)),
                           ("missing", set(spec.inputs) - set(names))):
        if found:
            raise InvalidArgument(f"{problem} input {min(found)!r}; the signature takes {takes}")


def _finite(name: str, array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))
        raise InvalidArgument(f"input {name!r} has {len(bad)} non-finite values (NaN or inf), "
                              f"the first at index {bad[0].tolist()}")
    return array


def from_protos(spec: SignatureSpec, protos: Mapping[str, Any], limits: Limits = Limits()):
    """A PredictRequest's TensorProtos -> arrays, each checked from its header first."""
    _check_names(spec, protos)
    arrays = {}
    for name, proto in protos.items():
        try:
            dtype = tf.as_dtype(proto.dtype).name
        except TypeError:
            dtype = f"dtype enum {proto.dtype}"
        if proto.tensor_shape.unknown_rank:
            raise InvalidArgument(f"input {name!r} has no shape (unknown rank)")
        shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
        check(name, spec.inputs[name], dtype, shape, limits)
        try:
            array = tf.make_ndarray(proto)
        except Exception:
            array = None
        if array is None or array.shape != shape:
            raise InvalidArgument(f"input {name!r}: tensor content does not match shape {_text(shape)}")
        arrays[name] = _finite(name, array)
    return arrays


def from_values(spec: SignatureSpec, values: Mapping[str, Any], limits: Limits = Limits(), *,
                cast: bool = False):
    """Arrays (or lists) -> checked arrays; JSON carries no dtype, so REST casts (`cast`).

    Without `cast` an array of another dtype is refused, as TF Serving's gRPC API does.
    """
    _check_names(spec, values)
    arrays = {}
    for name, value in values.items():
        want = spec.inputs[name].dtype
        if cast or not isinstance(value, np.ndarray):
            try:
                value = np.asarray(value, dtype=want.as_numpy_dtype)
            except (TypeError, ValueError) as e:
                raise InvalidArgument(f"input {name!r} cannot be read as {want.name}: {e}") from None
        dtype = want.name if value.dtype == want.as_numpy_dtype else value.dtype.name
        check(name, spec.inputs[name], dtype, value.shape, limits)
        arrays[name] = _finite(name, value)
    return arrays


# A failed tf.debugging assert: `assertion failed: [message] [Condition ...:] [x (node) = ] [values]`,
# its strings escaped by the Assert op.
_ASSERT = re.compile(r"assertion failed: \[(.*?)\](?: \[Condition[^\]]*\] \[x \([^)]*\) = \] \[([^\]]*)\])?")


def call(fn, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a loaded signature on checked inputs; TensorFlow errors become status codes."""
    try:
        outputs = fn(**{name: tf.constant(value) for name, value in arrays.items()})
        return {name: np.asarray(tensor.numpy()) for name, tensor in outputs.items()}
    except tf.errors.InvalidArgumentError as e:
        failed = _ASSERT.search(e.message)
        if failed is None:
            raise InvalidArgument(f"the model rejected the request: {_first_line(e.message)}") from None
        message = failed[1].replace("\\'", "'").replace('\\"', '"').rstrip(". ")
        raise InvalidArgument(message + (f", got [{failed[2]}]" if failed[2] else "")) from None
    except tf.errors.ResourceExhaustedError as e:
        raise ResourceExhausted(f"out of memory running the model: {_first_line(e.message)}") from None
    except (tf.errors.OpError, ValueError, TypeError) as e:
        raise Internal(f"the model failed: {_first_line(str(e))}") from None


def _first_line(message: str) -> str:
    """The cause in a TF op error, without "Graph execution error", node names or stacks."""
    skip = ("Graph execution error", "Detected at node", "<stack traces")
    lines = [line for line in message.splitlines()
             if line.strip() and not line.startswith((" ", "\t", *skip))]
    return re.sub(r"\s*\[Op:[^\]]*\]$", "", (lines or [message.strip() or "(no message)"])[0]).strip()
