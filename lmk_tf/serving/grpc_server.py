"""TF Serving's gRPC API over a ModelManager, registered with the generated add_*_to_server.

Stock tensorflow-serving-api stubs cannot tell it from tensorflow_model_server
for Predict, GetModelMetadata (signature_def), GetModelStatus and
HandleReloadConfigRequest; Classify, Regress and MultiInference answer
UNIMPLEMENTED (the generated base classes do). Every failure is a status code
(status.py), so one bad request never takes the server down; requests run in
a thread pool. No name or path from a request reaches the file system: models
are looked up among the configured ones, and a ReloadConfigRequest may only
name base paths inside the allowed model roots.
"""

from __future__ import annotations

import functools
import logging
import os
from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from lmk_tf.errors import ConfigError
from lmk_tf.export.contract import DEFAULT_SIGNATURE, MAX_REQUEST_MB
from lmk_tf.serving import model_config as mc
from lmk_tf.serving.status import InvalidArgument, ServingError, code_of

log = logging.getLogger(__name__)


def resolve(manager, model_spec):
    """The loaded version a request's ModelSpec names (version, label or latest)."""
    if not model_spec.name:
        raise InvalidArgument("model_spec.name is empty")
    label = model_spec.version_label if model_spec.WhichOneof("version_choice") == "version_label" else None
    return manager.get(model_spec.name, model_spec.version.value if model_spec.HasField("version") else None,
                       label)


def model_status(manager, model_spec) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatus (also REST's status): every version seen, or the one asked for."""
    if not model_spec.name:
        raise InvalidArgument("model_spec.name is empty")
    version = model_spec.version.value if model_spec.HasField("version") else None
    if model_spec.WhichOneof("version_choice") == "version_label":
        version = manager.get(model_spec.name, label=model_spec.version_label).version
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in manager.status(model_spec.name, version):
        entry = response.model_version_status.add(version=status.version, state=status.state)
        # tensorflow.error.Code: OK = 0, UNKNOWN = 2.
        entry.status.error_code, entry.status.error_message = (2 if status.error else 0), status.error
    return response


def model_metadata(manager, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadata (also REST's metadata): the SavedModel's SignatureDefs."""
    if not request.metadata_field:
        raise InvalidArgument("GetModelMetadataRequest must name a metadata_field ('signature_def')")
    for field in request.metadata_field:
        if field != "signature_def":
            raise InvalidArgument(f"metadata field {field!r} is not supported; use 'signature_def'")
    served = resolve(manager, request.model_spec)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name, response.model_spec.version.value = served.name, served.version
    response.metadata["signature_def"].Pack(get_model_metadata_pb2.SignatureDefMap(
        signature_def=served.signature_defs))
    return response


def _status_on_failure(method):
    @functools.wraps(method)
    def handler(self, request, context):
        try:
            return method(self, request, context)
        except Exception as e:
            message = str(e)
            if not isinstance(e, ServingError):
                log.exception("unexpected error answering a request")
                message = f"internal error: {type(e).__name__}: {e}"
            context.abort(getattr(grpc.StatusCode, code_of(e)), message)
    return handler


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager):
        self._manager = manager

    @_status_on_failure
    def Predict(self, request, context):
        served = resolve(self._manager, request.model_spec)
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        outputs = served.predict_protos(signature_name, request.inputs)
        for name in request.output_filter:
            if name not in outputs:
                raise InvalidArgument(f"output_filter names unknown output {name!r}; the "
                                      f"signature returns {', '.join(map(repr, sorted(outputs)))}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name, response.model_spec.signature_name = served.name, signature_name
        response.model_spec.version.value = served.version
        for name in request.output_filter or outputs:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
        return response

    @_status_on_failure
    def GetModelMetadata(self, request, context):
        return model_metadata(self._manager, request)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager, model_roots=None):
        self._manager = manager
        # None: every path allowed (in-process use); []: no ReloadConfigRequest path allowed.
        self._roots = None if model_roots is None else [os.path.realpath(r) for r in model_roots]

    @_status_on_failure
    def GetModelStatus(self, request, context):
        return model_status(self._manager, request.model_spec)

    @_status_on_failure
    def HandleReloadConfigRequest(self, request, context):
        try:
            mc.check_model_config(request.config, source="ReloadConfigRequest")
        except ConfigError as e:
            raise InvalidArgument(str(e)) from None
        # Every base path is checked before anything touches the disk.
        for model in request.config.model_config_list.config if self._roots is not None else ():
            path = model.base_path
            if "://" in path or "\x00" in path:
                raise InvalidArgument(f"model {model.name!r}: base_path {path!r} is not a local path")
            resolved = os.path.normpath(os.path.abspath(path))
            if not any(resolved == r or resolved.startswith(r.rstrip(os.sep) + os.sep) for r in self._roots):
                raise InvalidArgument(f"model {model.name!r}: base_path {path!r} is outside the allowed "
                                      "model roots (--allowed_model_roots); a ReloadConfigRequest cannot "
                                      "point the server elsewhere")
        self._manager.reload_config(request.config)
        return model_management_pb2.ReloadConfigResponse()


class _Undecodable(Exception):
    pass


class _UndecodableIsInvalidArgument(grpc.ServerInterceptor):
    """grpcio answers bytes its deserializer cannot parse with INTERNAL, blaming the
    server for the client's bytes; this answers INVALID_ARGUMENT naming the message."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        parse, answer = handler.request_deserializer, handler.unary_unary

        def deserialize(data: bytes):
            try:
                return parse(data)
            except Exception as e:
                return _Undecodable(f"the request is not a valid {parse.__self__.DESCRIPTOR.full_name} "
                                    f"message: {e}")

        def unary_unary(request, context):
            if isinstance(request, _Undecodable):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request))
            return answer(request, context)

        return handler._replace(request_deserializer=deserialize, unary_unary=unary_unary)


def create_server(manager, *, host: str = "127.0.0.1", port: int = 8500, max_workers: int = 16,
                  max_message_mb: int = MAX_REQUEST_MB, max_concurrent_requests: int = 64,
                  tls=None, model_roots=None) -> tuple[grpc.Server, int]:
    """A gRPC server bound to host:port, not started yet; returns (server, bound port).

    Messages over `max_message_mb` and requests over `max_concurrent_requests`
    (running or queued; 0 = no limit) get RESOURCE_EXHAUSTED at once instead of
    piling up in memory. `tls` is a tls.ServerTls (None: plaintext); a
    ReloadConfigRequest may name base paths in `model_roots` only (None: any,
    for in-process use).
    """
    limit = int(max_message_mb * 2**20)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[_UndecodableIsInvalidArgument()], maximum_concurrent_rpcs=max_concurrent_requests or None,
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                 ("grpc.so_reuseport", 0)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(manager), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(manager, model_roots), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = (server.add_insecure_port(address) if tls is None
                 else server.add_secure_port(address, tls.grpc_credentials()))
    except RuntimeError as e:
        raise ConfigError(f"cannot bind gRPC to {address}: {e}") from None
    if bound == 0:
        raise ConfigError(f"cannot bind gRPC to {address} (port in use, or a bad TLS certificate/key?)")
    return server, bound
