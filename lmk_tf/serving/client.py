"""Landmarks from a TF Serving (or lmk-serve) server with the stock stubs.

The request is what tensorflow_serving/example/resnet_client_grpc.py builds:
PredictRequest(model_spec.name, signature_name) with `tf.make_tensor_proto`
inputs and a deadline on every call. The server returns indices and mm
(index * spacing); world coordinates need the image's origin and direction,
which stay on the client, so they are added here.

Landmark names: a `names` argument wins; otherwise, when the model has a
`model_info` signature (no inputs, one string output holding
assets/model_info.json), it is asked once per model version; otherwise the
landmarks are called landmark_0, landmark_1, ...
"""

from __future__ import annotations

import csv
import io
import json
import weakref
from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from lmk_tf.errors import ConfigError, ModelError, RequestError
from lmk_tf.export.contract import (
    DEFAULT_SIGNATURE,
    IMAGE,
    INFO_OUTPUT,
    INFO_SIGNATURE,
    MAX_REQUEST_MB,
    OUTPUT_KEYS,
    SPACING,
)
from lmk_tf.image import Image
from lmk_tf.serving.inputs import parse_spacing, read_image_for_model  # noqa: F401 - re-exported
from lmk_tf.serving.tls import channel_credentials

FORMATS = ("json", "csv")

# stub -> {(model, version): names}; dropped with the stub.
_names_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def make_channel(address: str, *, max_message_mb: int = MAX_REQUEST_MB,
                 ssl_ca_file: str | None = None) -> grpc.Channel:
    """A channel whose message limits fit a whole volume (gRPC's default 4 MB does not).

    Args:
      address: HOST:PORT.
      max_message_mb: largest message sent or received.
      ssl_ca_file: PEM file of the certificate(s) to trust: a TLS channel. None = plaintext.
    """
    if not address or ":" not in address:
        raise ConfigError(f"server address must be HOST:PORT, got {address!r}")
    limit = int(max_message_mb * 2**20)
    options = [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
    if ssl_ca_file is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, channel_credentials(ssl_ca_file), options=options)


def make_stub(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _call(method, request, timeout: float, what: str):
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as e:
        raise RequestError(f"{what}: {e.code().name}: {e.details()}") from None


def _spec(request, model_name: str, version: int | None, signature: str | None = None):
    request.model_spec.name = model_name
    if version is not None:
        request.model_spec.version.value = int(version)
    if signature is not None:
        request.model_spec.signature_name = signature
    return request


def get_metadata(stub, model_name: str, *, version: int | None = None, timeout: float = 30.0):
    """(served version, {signature name: SignatureDef}) from GetModelMetadata."""
    request = _spec(get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"]),
                    model_name, version)
    response = _call(stub.GetModelMetadata, request, timeout, f"metadata of model {model_name!r}")
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    return response.model_spec.version.value, dict(signature_map.signature_def)


def landmark_names(stub, model_name: str, *, version: int | None = None, timeout: float = 30.0):
    """Names from the model's `model_info` signature, or None if it has none.

    Cached per stub, model and version, so a client asks once, not per image.
    """
    cache = _names_cache.setdefault(stub, {})
    if version is not None and (model_name, version) in cache:
        return cache[(model_name, version)]
    served_version, signatures = get_metadata(stub, model_name, version=version, timeout=timeout)
    names = None
    if INFO_SIGNATURE in signatures:
        request = _spec(predict_pb2.PredictRequest(), model_name, served_version, INFO_SIGNATURE)
        response = _call(stub.Predict, request, timeout, f"model_info of model {model_name!r}")
        if INFO_OUTPUT in response.outputs:
            info = json.loads(tf.make_ndarray(response.outputs[INFO_OUTPUT]).item())
            names = list(info.get("landmark_names") or []) or None
    cache[(model_name, served_version)] = names
    return names


def predict_image(stub, model_name: str, image: Image, *, version: int | None = None,
                  signature: str = DEFAULT_SIGNATURE, timeout: float = 30.0,
                  names: Sequence[str] | None = None) -> dict[str, Any]:
    """Landmarks for one image from a server.

    Args:
      stub: a PredictionServiceStub (see `make_stub(make_channel(...))`).
      model_name: the served model.
      image: the image with its geometry; sent as float32 [..., 1] + spacing.
      version: a specific version; None = the latest the server has.
      signature: the signature to call.
      timeout: seconds allowed for each call (deadline).
      names: landmark names; None = ask the model (see module docstring).

    Returns:
      `shape_results(...)`: model, shape, spacing and per-landmark index, mm,
      world, confidence and present.
    """
    request = _spec(predict_pb2.PredictRequest(), model_name, version, signature)
    request.inputs[IMAGE].CopyFrom(tf.make_tensor_proto(np.asarray(image.array, np.float32)[..., np.newaxis]))
    request.inputs[SPACING].CopyFrom(tf.make_tensor_proto(np.asarray(image.spacing, np.float32)))
    response = _call(stub.Predict, request, timeout, f"predict with model {model_name!r}")
    outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
    served_version = response.model_spec.version.value
    if names is None:
        names = landmark_names(stub, model_name, version=served_version, timeout=timeout)
    return shape_results(outputs, image, names, model={"name": model_name, "version": served_version})


def shape_results(outputs: dict[str, np.ndarray], image: Image, names=None, *,
                  model: dict | None = None) -> dict[str, Any]:
    """Signature outputs -> plain, JSON-able results with world coordinates added."""
    missing = [n for n in OUTPUT_KEYS if n not in outputs]
    if missing:
        raise ModelError(f"the model's outputs lack {missing[0]!r}; it returned {sorted(outputs)} "
                         f"(the contract is {', '.join(OUTPUT_KEYS)})")
    # The contract's order: landmarks_index, landmarks_mm, confidence, present.
    index, mm, confidence = (np.asarray(outputs[k], np.float64) for k in OUTPUT_KEYS[:3])
    present = np.asarray(outputs[OUTPUT_KEYS[3]], bool)
    if index.ndim != 2 or index.shape[1] != image.ndim:
        raise ModelError(f"{OUTPUT_KEYS[0]} has shape {list(index.shape)}; expected [L, {image.ndim}] "
                         f"for a {image.ndim}D image")
    names = [f"landmark_{i}" for i in range(len(index))] if names is None else names
    if len(names) != len(index):
        raise ModelError(f"{len(names)} landmark names for {len(index)} landmarks")
    world = image.index_to_world(index)
    return {
        "model": dict(model or {}), "shape": list(image.shape), "spacing": list(image.spacing),
        "landmarks": [
            {"name": str(names[i]), "index": index[i].tolist(), "mm": mm[i].tolist(),
             "world": [float(v) for v in world[i]], "confidence": float(confidence[i]),
             "present": bool(present[i])}
            for i in range(len(index))
        ],
    }


def format_results(results, fmt: str = "json") -> str:
    """One result dict or a list of them (each may carry "file") as JSON or CSV text.

    CSV has one row per image and landmark: file, landmark, present, confidence,
    then index_<axis>, mm_<axis> (array-axis order) and world_<x|y|z> columns for
    the largest dimensionality present (empty cells for 2D rows in a 3D table).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    items = [results] if isinstance(results, dict) else list(results)
    if fmt == "json":
        return json.dumps(items if not isinstance(results, dict) else results, indent=2)
    ndim = max((len(r["shape"]) for r in items), default=2)
    index_axes, world_axes = ["slice", "row", "col"][-ndim:], ["x", "y", "z"][:ndim]
    header = (["file", "landmark", "present", "confidence"]
              + [f"index_{a}" for a in index_axes] + [f"mm_{a}" for a in index_axes]
              + [f"world_{a}" for a in world_axes])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in items:
        pad = ndim - len(r["shape"])
        for lm in r["landmarks"]:
            # A 2D row in a 3D table: no slice axis in front, no z at the end.
            writer.writerow(
                [r.get("file", ""), lm["name"], int(lm["present"]), f"{lm['confidence']:.6g}"]
                + [""] * pad + [f"{v:.6g}" for v in lm["index"]]
                + [""] * pad + [f"{v:.6g}" for v in lm["mm"]]
                + [f"{v:.6g}" for v in lm["world"]] + [""] * pad
            )
    return out.getvalue()
