"""A request checked against the loaded signature, then run; failures carry their status code.

The signature's TensorSpecs give the inputs, dtypes and fixed dimensions; `check` enforces them
from a tensor's header, with the size limits, before anything is decoded or allocated, and
non-finite floats are refused naming the first bad index. What the model needs beyond its specs
(spacing > 0, 2 pixels per axis) its graph asserts, as stock TF Serving relies on: `call` answers
a failed tf.debugging assert with INVALID_ARGUMENT and the assert's own message.
"""

import dataclasses
import logging
import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from lmk_tf.errors import LmkError, RequestError
from lmk_tf.export.tensors import aligned, as_tensor


class ServingError(RequestError):
    """A request that cannot be answered; gRPC and REST answer with `code`, a grpc.StatusCode name."""

    code = "INVALID_ARGUMENT"


class InvalidArgument(ServingError):
    code = "INVALID_ARGUMENT"


class NotFound(ServingError):
    code = "NOT_FOUND"


class ResourceExhausted(ServingError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(ServingError):
    code = "UNAVAILABLE"


class Internal(ServingError):
    code = "INTERNAL"


def status_of(error: Exception) -> tuple[str, str]:
    """(status code name, message) that answer `error`: the code of a ServingError, INVALID_ARGUMENT
    for another LmkError (the user's input or setup), else INTERNAL, logged: a bug."""
    if isinstance(error, LmkError):
        return getattr(error, "code", "INVALID_ARGUMENT"), str(error)
    logging.getLogger(__name__).exception("unexpected error answering a request")
    return "INTERNAL", f"internal error: {type(error).__name__}: {error}"


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits of every input tensor."""

    max_elements: int = 64 * 2**20  # 256 MiB of float32, a 406^3 volume
    max_dim: int = 65536  # no modality has more pixels along one axis; more is a corrupt header


class SignatureSpec(NamedTuple):
    """A loaded signature's inputs, name -> tf.TensorSpec (its `structured_input_signature`)."""

    inputs: dict[str, tf.TensorSpec]


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
        raise InvalidArgument(f"input {name!r} has shape {_text(shape)}; at most {limits.max_dim} "
                              "elements per axis are accepted")
    if math.prod(shape) > limits.max_elements:
        raise InvalidArgument(f"input {name!r} has {math.prod(shape)} elements (shape {_text(shape)}), more "
                              f"than the server's limit of {limits.max_elements} (--max_image_elements)")


def _check_names(spec: SignatureSpec, names) -> None:
    takes = ", ".join(map(repr, sorted(spec.inputs))) or "no inputs"
    for problem, found in (("unknown", set(names) - set(spec.inputs)), ("missing", set(spec.inputs) - set(names))):
        if found:
            raise InvalidArgument(f"{problem} input {min(found)!r}; the signature takes {takes}")


def _finite(name: str, array: np.ndarray) -> np.ndarray:
    # min and max are NaN when any value is, and show an inf: no CT-sized boolean temporary.
    if array.dtype.kind == "f" and array.size and not (np.isfinite(array.min()) and np.isfinite(array.max())):
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
            array = (aligned(np.frombuffer(proto.tensor_content, tf.as_dtype(proto.dtype).as_numpy_dtype)
                             .reshape(shape)) if proto.tensor_content else tf.make_ndarray(proto).reshape(shape))
        except Exception:
            raise InvalidArgument(f"input {name!r}: tensor content does not match shape {_text(shape)}") from None
        arrays[name] = _finite(name, array)
    return arrays


def from_values(spec: SignatureSpec, values: Mapping[str, Any], limits: Limits = Limits(), *, cast: bool = False):
    """Arrays (or lists) -> checked arrays. Without `cast` an array of another dtype is
    refused, as TF Serving's gRPC API does; JSON carries no dtype, so REST casts."""
    _check_names(spec, values)
    arrays = {}
    for name, value in values.items():
        want = spec.inputs[name].dtype
        if cast or not isinstance(value, np.ndarray):
            try:
                value = np.asarray(value, dtype=want.as_numpy_dtype)
            except (TypeError, ValueError) as e:
                raise InvalidArgument(f"input {name!r} cannot be read as {want.name}: {e}") from None
        check(name, spec.inputs[name], want.name if value.dtype == want.as_numpy_dtype else value.dtype.name,
              value.shape, limits)
        arrays[name] = _finite(name, value)
    return arrays


# A failed tf.debugging assert: `assertion failed: [message] [Condition ...:] [x (node) = ] [values]`,
# its strings escaped by the Assert op.
_ASSERT = re.compile(r"assertion failed: \[(.*?)\](?: \[Condition[^\]]*\] \[x \([^)]*\) = \] \[([^\]]*)\])?")


def call(fn, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a loaded signature on checked inputs; TensorFlow errors become status codes."""
    try:
        outputs = fn(**{name: as_tensor(value) for name, value in arrays.items()})
        return {name: np.asarray(tensor.numpy()) for name, tensor in outputs.items()}
    except tf.errors.InvalidArgumentError as e:
        if failed := _ASSERT.search(e.message):
            message = failed[1].replace("\\'", "'").replace('\\"', '"').rstrip(". ")
            raise InvalidArgument(message + (f", got [{failed[2]}]" if failed[2] else "")) from None
        raise InvalidArgument(f"the model rejected the request: {_first_line(e.message)}") from None
    except tf.errors.ResourceExhaustedError as e:
        raise ResourceExhausted(f"out of memory running the model: {_first_line(e.message)}") from None
    except (tf.errors.OpError, ValueError, TypeError) as e:
        raise Internal(f"the model failed: {_first_line(str(e))}") from None


def _first_line(message: str) -> str:
    """The cause in a TF op error, without "Graph execution error", node names or stacks."""
    skip = (" ", "\t", "Graph execution error", "Detected at node", "<stack traces")
    lines = [line for line in message.splitlines() if line.strip() and not line.startswith(skip)]
    return re.sub(r"\s*\[Op:[^\]]*\]$", "", (lines or [message.strip() or "(no message)"])[0]).strip()
