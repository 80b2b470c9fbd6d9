"""Landmarks from a TF Serving (or lmk-serve) server with the stock stubs, as
tensorflow_serving/example/resnet_client_grpc.py asks (a deadline on every call), with world
coordinates (origin and direction stay on the client) and names (the `model_info` signature)."""

import json
import weakref
from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2, predict_pb2, prediction_service_pb2_grpc

from lmk_tf.errors import ConfigError, ModelError, RequestError
from lmk_tf.export import contract
from lmk_tf.image import Image
from lmk_tf.serving.inputs import parse_spacing, read_image_for_model  # noqa: F401 - re-exported
from lmk_tf.serving.tls import channel_credentials

_names_cache = weakref.WeakKeyDictionary()  # stub -> {(model, version): names}, dropped with the stub


def make_channel(address: str, *, max_message_mb: int = contract.MAX_REQUEST_MB,
                 ssl_ca_file: str | None = None) -> grpc.Channel:
    """A channel to HOST:PORT whose message limit fits a whole volume (gRPC's default 4 MB
    does not); TLS trusting the PEM certificate(s) in `ssl_ca_file` if given."""
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


def _spec(model_name: str, version: int | None = None, signature: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=model_name, signature_name=signature)
    if version is not None:
        spec.version.value = int(version)
    return spec


def landmark_names(stub, model_name: str, *, version: int | None = None, timeout: float = 30.0):
    """Names from the model's `model_info` signature (None without one), cached per stub,
    model and version so that a client asks once, not per image."""
    cache = _names_cache.setdefault(stub, {})
    if (model_name, version) in cache:
        return cache[(model_name, version)]
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=_spec(model_name, version),
                                                             metadata_field=["signature_def"])
    response = _call(stub.GetModelMetadata, request, timeout, f"metadata of model {model_name!r}")
    served_version, names = response.model_spec.version.value, None
    signatures = get_model_metadata_pb2.SignatureDefMap()
    if response.metadata["signature_def"].Unpack(signatures) and contract.INFO_SIGNATURE in signatures.signature_def:
        request = predict_pb2.PredictRequest(model_spec=_spec(model_name, served_version, contract.INFO_SIGNATURE))
        response = _call(stub.Predict, request, timeout, f"model_info of model {model_name!r}")
        if contract.INFO_OUTPUT in response.outputs:
            info = json.loads(tf.make_ndarray(response.outputs[contract.INFO_OUTPUT]).item())
            names = list(info.get("landmark_names") or []) or None
    cache[(model_name, served_version)] = names
    return names


def predict_image(stub, model_name: str, image: Image, *, version: int | None = None,
                  signature: str = contract.DEFAULT_SIGNATURE, timeout: float = 30.0,
                  names: Sequence[str] | None = None) -> dict[str, Any]:
    """Landmarks for one image (sent as float32 [..., 1] + spacing) from `stub`
    (`make_stub(make_channel(...))`): `shape_results` of the answer. `version`
    None is the latest served; `timeout` is each call's deadline in seconds."""
    request = predict_pb2.PredictRequest(model_spec=_spec(model_name, version, signature))
    pixels, spacing = np.asarray(image.array, np.float32)[..., np.newaxis], np.asarray(image.spacing, np.float32)
    request.inputs[contract.IMAGE].CopyFrom(tf.make_tensor_proto(pixels))
    request.inputs[contract.SPACING].CopyFrom(tf.make_tensor_proto(spacing))
    response = _call(stub.Predict, request, timeout, f"predict with model {model_name!r}")
    outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
    served_version = response.model_spec.version.value
    if names is None:
        names = landmark_names(stub, model_name, version=served_version, timeout=timeout)
    return shape_results(outputs, image, names, model={"name": model_name, "version": served_version})


def shape_results(outputs: dict[str, np.ndarray], image: Image, names=None, *,
                  model: dict | None = None) -> dict[str, Any]:
    """Signature outputs -> plain, JSON-able results with world coordinates added."""
    missing = [n for n in contract.LANDMARK_OUTPUTS if n not in outputs]
    if missing:
        raise ModelError(f"the model's outputs lack {missing[0]!r}; it returned {sorted(outputs)} "
                         f"(the contract is {', '.join(contract.OUTPUT_KEYS)})")
    # Older versions have no predicted error; their answers simply lack it.
    errors = {k: np.asarray(outputs[k], np.float64) for k in contract.UNCERTAINTY_OUTPUTS if k in outputs}
    index, mm, confidence = (np.asarray(outputs[k], np.float64) for k in contract.OUTPUT_KEYS[:3])
    present = np.asarray(outputs[contract.OUTPUT_KEYS[3]], bool)
    if index.ndim != 2 or index.shape[1] != image.ndim:
        raise ModelError(f"{contract.OUTPUT_KEYS[0]} has shape {list(index.shape)}; "
                         f"expected [L, {image.ndim}] for a {image.ndim}D image")
    names = [f"landmark_{i}" for i in range(len(index))] if names is None else names
    if len(names) != len(index):
        raise ModelError(f"{len(names)} landmark names for {len(index)} landmarks")
    world = image.index_to_world(index)
    return {
        "model": dict(model or {}), "shape": list(image.shape), "spacing": list(image.spacing),
        "landmarks": [
            {"name": str(names[i]), "index": index[i].tolist(), "mm": mm[i].tolist(),
             "world": [float(v) for v in world[i]], "confidence": float(confidence[i]),
             "present": bool(present[i]), **{k: float(v[i]) for k, v in errors.items()}}
            for i in range(len(index))
        ],
    }
