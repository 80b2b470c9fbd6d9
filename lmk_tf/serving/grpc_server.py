"""TF Serving's gRPC API (PredictionService, ModelService) over a ModelManager.

Clients use the stock tensorflow-serving-api stubs and cannot tell this server
from tensorflow_model_server for the calls it implements: Predict,
GetModelMetadata (signature_def), GetModelStatus and HandleReloadConfigRequest.
Classify, Regress and MultiInference answer UNIMPLEMENTED.

Every handler turns failures into a status code (NOT_FOUND for an unknown
model/version/label/signature, INVALID_ARGUMENT for a bad input - including
bytes that do not parse as the request message -, RESOURCE_EXHAUSTED for a
message over the size limit or a request over the concurrency limit, INTERNAL
for anything else), so one bad request never takes the server down. Requests
run in a thread pool, so concurrent requests run the model in parallel.

Safety: the server binds loopback unless told otherwise, speaks TLS when given
a certificate and key, and no name or path from a request reaches the file
system - model names are looked up among the configured models, and a
ReloadConfigRequest may only name base paths inside the allowed model roots.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from lmk_tf.errors import ConfigError
from lmk_tf.serving import model_config as mc
from lmk_tf.serving.manager import ModelManager
from lmk_tf.serving.status import InvalidArgument, ServingError, code_of

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_MB = 512
DEFAULT_MAX_CONCURRENT_REQUESTS = 64
# tensorflow.error.Code values used in StatusProto.
_OK, _UNKNOWN = 0, 2


def resolve(manager: ModelManager, model_spec):
    """The loaded version a request's ModelSpec names (version, label or latest)."""
    if not model_spec.name:
        raise InvalidArgument("model_spec.name is empty")
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label if model_spec.WhichOneof("version_choice") == "version_label" else None
    return manager.get(model_spec.name, version=version, label=label)


def _abort(context, error: Exception) -> None:
    code = code_of(error)
    if not isinstance(error, ServingError):
        log.exception("unexpected error answering a request")
        message = f"internal error: {type(error).__name__}: {error}"
    else:
        message = str(error)
    context.abort(getattr(grpc.StatusCode, code), message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata."""

    def __init__(self, manager: ModelManager):
        self._manager = manager

    def Predict(self, request, context):
        try:
            served = resolve(self._manager, request.model_spec)
            signature_name = request.model_spec.signature_name or "serving_default"
            outputs = served.predict_protos(signature_name, request.inputs)
            wanted = list(request.output_filter) or list(outputs)
            unknown = [n for n in wanted if n not in outputs]
            if unknown:
                raise InvalidArgument(
                    f"output_filter names unknown output {unknown[0]!r}; "
                    f"the signature returns {', '.join(map(repr, sorted(outputs)))}"
                )
            response = predict_pb2.PredictResponse()
            response.model_spec.name = served.name
            response.model_spec.version.value = served.version
            response.model_spec.signature_name = signature_name
            for name in wanted:
                response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
            return response
        except Exception as e:
            _abort(context, e)

    def GetModelMetadata(self, request, context):
        try:
            fields = list(request.metadata_field)
            if not fields:
                raise InvalidArgument("GetModelMetadataRequest must name a metadata_field ('signature_def')")
            for field in fields:
                if field != "signature_def":
                    raise InvalidArgument(f"metadata field {field!r} is not supported; use 'signature_def'")
            served = resolve(self._manager, request.model_spec)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = served.name
            response.model_spec.version.value = served.version
            signature_map = signature_def_map(served)
            response.metadata["signature_def"].Pack(signature_map)
            return response
        except Exception as e:
            _abort(context, e)


def signature_def_map(served) -> get_model_metadata_pb2.SignatureDefMap:
    """The SavedModel's SignatureDefs as TF Serving's metadata carries them."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, sig in served.signature_defs.items():
        signature_map.signature_def[name].CopyFrom(sig)
    return signature_map


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, manager: ModelManager, model_roots=None):
        self._manager = manager
        # None: every path allowed (in-process use); [] : no ReloadConfigRequest path allowed.
        self._roots = None if model_roots is None else [os.path.realpath(r) for r in model_roots]

    def _check_paths(self, config) -> None:
        """Refuse base paths outside the model roots before anything touches the disk."""
        if self._roots is None:
            return
        for model in config.model_config_list.config:
            path = model.base_path
            if "://" in path or "\x00" in path:
                raise InvalidArgument(f"model {model.name!r}: base_path {path!r} is not a local path")
            resolved = os.path.normpath(os.path.abspath(path))
            if not any(resolved == r or resolved.startswith(r.rstrip(os.sep) + os.sep)
                       for r in self._roots):
                raise InvalidArgument(
                    f"model {model.name!r}: base_path {path!r} is outside the allowed model roots "
                    "(--allowed_model_roots); a ReloadConfigRequest cannot point the server elsewhere"
                )

    def GetModelStatus(self, request, context):
        try:
            spec = request.model_spec
            if not spec.name:
                raise InvalidArgument("model_spec.name is empty")
            version = spec.version.value if spec.HasField("version") else None
            if spec.WhichOneof("version_choice") == "version_label":
                version = self._manager.get(spec.name, label=spec.version_label).version
            response = get_model_status_pb2.GetModelStatusResponse()
            for status in self._manager.status(spec.name, version):
                entry = response.model_version_status.add()
                entry.version = status.version
                entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
                entry.status.error_code = _UNKNOWN if status.error else _OK
                entry.status.error_message = status.error
            return response
        except Exception as e:
            _abort(context, e)

    def HandleReloadConfigRequest(self, request, context):
        try:
            try:
                mc.check_model_config(request.config, source="ReloadConfigRequest")
            except ConfigError as e:
                raise InvalidArgument(str(e)) from None
            self._check_paths(request.config)
            self._manager.reload_config(request.config)
            response = model_management_pb2.ReloadConfigResponse()
            response.status.error_code = _OK
            return response
        except Exception as e:
            _abort(context, e)


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS gRPC port (server certificate chain and its private key)."""

    cert_file: str
    key_file: str

    def read(self) -> tuple[bytes, bytes]:
        pair = []
        for what, path in (("certificate", self.cert_file), ("key", self.key_file)):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise ConfigError(f"{path}: cannot read the TLS {what} ({e.strerror or e})") from None
            if b"-----BEGIN" not in data:
                raise ConfigError(f"{path}: the TLS {what} is not a PEM file")
            pair.append(data)
        return pair[0], pair[1]


class _Undecodable:
    """Stands in for a request whose bytes are not the expected message."""

    def __init__(self, message_type, error):
        self.message_type = message_type
        self.error = error


def _safe_deserializer(message_type):
    def deserialize(data: bytes):
        try:
            return message_type.FromString(data)
        except Exception as e:
            return _Undecodable(message_type, e)

    return deserialize


def _guard(method):
    def handler(request, context):
        if isinstance(request, _Undecodable):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {request.message_type.DESCRIPTOR.full_name} "
                f"message: {request.error}",
            )
        return method(request, context)

    return handler


# (method, request type, response type) of each service, as the generated code registers them.
_PREDICTION_METHODS = (
    ("Classify", classification_pb2.ClassificationRequest, classification_pb2.ClassificationResponse),
    ("Regress", regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
    ("Predict", predict_pb2.PredictRequest, predict_pb2.PredictResponse),
    ("MultiInference", inference_pb2.MultiInferenceRequest, inference_pb2.MultiInferenceResponse),
    ("GetModelMetadata", get_model_metadata_pb2.GetModelMetadataRequest,
     get_model_metadata_pb2.GetModelMetadataResponse),
)
_MODEL_METHODS = (
    ("GetModelStatus", get_model_status_pb2.GetModelStatusRequest,
     get_model_status_pb2.GetModelStatusResponse),
    ("HandleReloadConfigRequest", model_management_pb2.ReloadConfigRequest,
     model_management_pb2.ReloadConfigResponse),
)


def _add_service(server, service: str, servicer, methods) -> None:
    """Like the generated add_*_to_server, but undecodable bytes get INVALID_ARGUMENT.

    grpcio answers a request its deserializer cannot parse with INTERNAL, which
    would blame the server for the client's bytes.
    """
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            _guard(getattr(servicer, name)),
            request_deserializer=_safe_deserializer(request_type),
            response_serializer=response_type.SerializeToString,
        )
        for name, request_type, response_type in methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))


def create_server(
    manager: ModelManager,
    *,
    host: str = "127.0.0.1",
    port: int = 8500,
    max_workers: int = 16,
    max_message_mb: int = DEFAULT_MAX_MESSAGE_MB,
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
    tls: TlsFiles | None = None,
    model_roots=None,
) -> tuple[grpc.Server, int]:
    """A started-not-yet gRPC server bound to host:port; returns (server, bound port).

    Args:
      manager: the models to serve.
      host: interface to bind; 127.0.0.1 keeps it local, 0.0.0.0 / [::] open it.
      port: TCP port; 0 picks a free one.
      max_workers: threads answering requests concurrently.
      max_message_mb: largest request or response; bigger ones get RESOURCE_EXHAUSTED.
      max_concurrent_requests: requests running or queued at once; more get
        RESOURCE_EXHAUSTED at once instead of piling up in memory (0 = no limit).
      tls: certificate and key for a TLS port; None = plaintext.
      model_roots: directories a ReloadConfigRequest may name base paths in;
        None allows any path (in-process use only).
    """
    limit = int(max_message_mb * 2**20)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=max_concurrent_requests or None,
    )
    _add_service(server, "tensorflow.serving.PredictionService", PredictionServicer(manager),
                 _PREDICTION_METHODS)
    _add_service(server, "tensorflow.serving.ModelService", ModelServicer(manager, model_roots),
                 _MODEL_METHODS)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            key_pair = tls.read()
            credentials = grpc.ssl_server_credentials([(key_pair[1], key_pair[0])])
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as e:
        raise ConfigError(f"cannot bind gRPC to {address}: {e}") from None
    if bound == 0:
        raise ConfigError(f"cannot bind gRPC to {address} (port in use, or a bad TLS certificate/key?)")
    return server, bound
