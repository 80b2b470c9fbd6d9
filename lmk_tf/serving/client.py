"""Landmarks from a TF Serving (or lmk-serve) server with the stock stubs, as
tensorflow_serving/example/resnet_client_grpc.py asks (a deadline on every call), with world
coordinates (origin and direction stay on the client) and names (the `model_info` signature)."""

import json
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2, predict_pb2, prediction_service_pb2_grpc

from lmk_tf.errors import ConfigError, RequestError
from lmk_tf.export import contract
from lmk_tf.export.results import shape_results
from lmk_tf.image import Image
from lmk_tf.io.model_input import parse_spacing, read_image_for_model  # noqa: F401 - re-exported
from lmk_tf.serving.tls import channel_credentials

_metadata_cache = weakref.WeakKeyDictionary()  # stub -> {(model, version): ModelMetadata}, dropped with the stub


def make_channel(address: str, *, max_message_mb: int = contract.MAX_REQUEST_MB,
                 ssl_ca_file: str | None = None, lb_policy: str | None = None) -> grpc.Channel:
    """A channel to HOST:PORT (or a gRPC target such as dns:///name:port) whose message limit fits
    a whole volume (gRPC's default 4 MB does not); TLS trusting the PEM certificate(s) in
    `ssl_ca_file` if given. `lb_policy` "round_robin" spreads calls over every address the name
    resolves to (a headless Service's pods) where gRPC's default, pick_first, uses one."""
    if not address or ":" not in address:
        raise ConfigError(f"server address must be HOST:PORT, got {address!r}")
    limit = int(max_message_mb * 2**20)
    options = [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
    if lb_policy:
        options.append(("grpc.service_config", json.dumps({"loadBalancingConfig": [{lb_policy: {}}]})))
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


class ModelMetadata(NamedTuple):
    version: int  # the version that answered
    names: list[str] | None  # from `model_info`, None without one
    signatures: frozenset[str]


def model_metadata(stub, model_name: str, *, version: int | None = None, timeout: float = 30.0) -> ModelMetadata:
    """The served version, its signatures and landmark names (its `model_info`), cached per stub,
    model and version so that a client asks once, not per image."""
    cache = _metadata_cache.setdefault(stub, {})
    if (model_name, version) in cache:
        return cache[(model_name, version)]
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=_spec(model_name, version),
                                                             metadata_field=["signature_def"])
    response = _call(stub.GetModelMetadata, request, timeout, f"metadata of model {model_name!r}")
    served_version, names = response.model_spec.version.value, None
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    if contract.INFO_SIGNATURE in signatures.signature_def:
        request = predict_pb2.PredictRequest(model_spec=_spec(model_name, served_version, contract.INFO_SIGNATURE))
        response = _call(stub.Predict, request, timeout, f"model_info of model {model_name!r}")
        if contract.INFO_OUTPUT in response.outputs:
            info = json.loads(tf.make_ndarray(response.outputs[contract.INFO_OUTPUT]).item())
            names = list(info.get("landmark_names") or []) or None
    cache[(model_name, version)] = cache[(model_name, served_version)] = metadata = ModelMetadata(
        served_version, names, frozenset(signatures.signature_def))
    return metadata


def predict_image(stub, model_name: str, image: Image, *, version: int | None = None,
                  signature: str = contract.DEFAULT_SIGNATURE, timeout: float = 30.0,
                  names: Sequence[str] | None = None, encoded: bytes | None = None) -> dict[str, Any]:
    """Landmarks for one image from `stub` (`make_stub(make_channel(...))`): `shape_results` of
    the answer. Sent as float32 [..., 1] + spacing, or, given `encoded` (its PNG/JPEG bytes,
    `model_input.encode_for_request`) and a model that has `serving_encoded`, as those bytes.
    `version` None is the latest served; `timeout` is each call's deadline in seconds."""
    if encoded is not None:
        metadata = model_metadata(stub, model_name, version=version, timeout=timeout)
        encoded = encoded if contract.ENCODED_SIGNATURE in metadata.signatures else None  # older versions lack it
    if encoded is not None:
        request = predict_pb2.PredictRequest(model_spec=_spec(model_name, version, contract.ENCODED_SIGNATURE))
        request.inputs[contract.IMAGE_BYTES].CopyFrom(tf.make_tensor_proto(encoded))
    else:
        request = predict_pb2.PredictRequest(model_spec=_spec(model_name, version, signature))
        request.inputs[contract.IMAGE].CopyFrom(tf.make_tensor_proto(np.asarray(image.array, np.float32)[..., None]))
    request.inputs[contract.SPACING].CopyFrom(tf.make_tensor_proto(np.asarray(image.spacing, np.float32)))
    response = _call(stub.Predict, request, timeout, f"predict with model {model_name!r}")
    outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
    served_version = response.model_spec.version.value
    if names is None:
        names = model_metadata(stub, model_name, version=served_version, timeout=timeout).names
    return shape_results(outputs, image, names, model={"name": model_name, "version": served_version})
