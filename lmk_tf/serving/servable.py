"""One loaded SavedModel version (signatures, SignatureDefs, model info, warm-up), through which
the server and in-process use (`local.py`) call a signature, so both validate a request alike."""

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from lmk_tf.errors import ModelError
from lmk_tf.export import contract
from lmk_tf.export.layout import is_complete_version_dir, list_versions, resolve_model_dir  # noqa: F401
from lmk_tf.export.warmup import read_warmup_requests
from lmk_tf.serving import validation

log = logging.getLogger(__name__)


class ServedSignature(NamedTuple):
    fn: Any
    spec: validation.SignatureSpec


@dataclasses.dataclass
class ServedVersion:
    """One version of one model (`name` '' in-process), loaded; `signature_defs` are saved_model.pb's,
    as TF Serving's GetModelMetadata returns them, `model_info` assets/model_info.json ({} if absent)."""

    name: str
    version: int
    path: str
    signatures: dict[str, ServedSignature]
    signature_defs: dict[str, Any]
    model_info: dict[str, Any]
    limits: validation.Limits
    _module: Any = None  # keeps the loaded object (and its variables) alive

    def signature(self, name: str = "") -> ServedSignature:
        name = name or contract.DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise validation.NotFound(f"model {self.name!r} version {self.version} has no signature {name!r}; "
                           f"it has {', '.join(map(repr, sorted(self.signatures)))}")
        return self.signatures[name]

    def predict_protos(self, signature_name: str, protos: Mapping[str, Any]):
        """Check TensorProto inputs and run the signature: name -> array."""
        fn, spec = self.signature(signature_name)
        return validation.call(fn, validation.from_protos(spec, protos, self.limits))

    def predict_arrays(self, signature_name: str, inputs: Mapping[str, Any], *, cast: bool = False):
        """Check numpy/list inputs and run the signature: name -> array."""
        fn, spec = self.signature(signature_name)
        return validation.call(fn, validation.from_values(spec, inputs, self.limits, cast=cast))


def load_version(path: str, *, name: str = "", version: int = 0,
                 limits: validation.Limits = validation.Limits(), warmup: bool = True) -> ServedVersion:
    """Load a SavedModel version directory, then replay its warm-up requests."""
    if not is_complete_version_dir(path):
        raise ModelError(f"{path}: not a SavedModel directory (no saved_model.pb)")
    try:
        module = tf.saved_model.load(path)
    except Exception as e:
        raise ModelError(f"{path}: cannot load SavedModel: {str(e).splitlines()[0]}") from None
    if not module.signatures:
        raise ModelError(f"{path}: the SavedModel has no signatures")
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved = saved_model_pb2.SavedModel.FromString(f.read())
    served = ServedVersion(
        name, version, path,
        {n: ServedSignature(fn, validation.SignatureSpec(dict(fn.structured_input_signature[1])))
         for n, fn in module.signatures.items()},
        dict(saved.meta_graphs[0].signature_def), contract.read_model_info(path, required=False), limits, module)
    if warmup:
        replay_warmup(served)
    return served


def replay_warmup(served: ServedVersion) -> int:
    """Run the version's warm-up requests once; returns the count. A failing one fails the
    load, as in TF Serving: a model that cannot answer it must not be AVAILABLE."""
    path, count = os.path.join(served.path, contract.WARMUP_FILE), 0
    for count, request in enumerate(read_warmup_requests(path), 1):
        try:
            served.predict_protos(request.model_spec.signature_name, request.inputs)
        except Exception as e:
            raise ModelError(f"{path}: warm-up record {count} failed: {e}") from None
    log.info("replayed %d warm-up requests from %s", count, path)
    return count
