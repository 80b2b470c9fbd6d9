"""TF Serving's gRPC API over a ModelManager, registered with the generated add_*_to_server.

Stock stubs cannot tell it from tensorflow_model_server for Predict, GetModelMetadata,
GetModelStatus and HandleReloadConfigRequest; Classify, Regress and MultiInference
answer UNIMPLEMENTED, as the generated base classes do. No name or path from a
request reaches the file system: models are looked up among the configured ones.
"""

import os
import time
from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from lmk_tf.errors import ConfigError
from lmk_tf.export import contract
from lmk_tf.serving.manager import check_model_config
from lmk_tf.serving.validation import InvalidArgument, ServingError, status_of


def _spec(model_spec) -> tuple[str, int | None, str | None]:
    """(name, version, label) of a ModelSpec."""
    if not model_spec.name:
        raise InvalidArgument("model_spec.name is empty")
    choice = model_spec.WhichOneof("version_choice")
    return (model_spec.name, model_spec.version.value if choice == "version" else None,
            model_spec.version_label if choice == "version_label" else None)


class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer, model_service_pb2_grpc.ModelServiceServicer):
    """Both services over one manager, also called by REST (context None); a ReloadConfigRequest
    may point into `model_roots` only (None: anywhere, for in-process use)."""

    def __init__(self, manager, model_roots=None):
        self._manager = manager
        self._roots = None if model_roots is None else [os.path.realpath(r) for r in model_roots]

    def resolve(self, model_spec):
        """The loaded version a request's ModelSpec names (version, label or latest)."""
        return self._manager.get(*_spec(model_spec))

    def Predict(self, request, context):
        served = self.resolve(request.model_spec)
        signature_name = request.model_spec.signature_name or contract.DEFAULT_SIGNATURE
        try:
            outputs = served.predict_protos(signature_name, request.inputs)
        except ServingError as e:
            e.served_version = served.version  # metrics count a failure against the version that failed
            raise
        for name in request.output_filter:
            if name not in outputs:
                raise InvalidArgument(f"output_filter names unknown output {name!r}; the "
                                      f"signature returns {', '.join(map(repr, sorted(outputs)))}")
        response = predict_pb2.PredictResponse(model_spec=request.model_spec)  # a label becomes the version
        response.model_spec.version.value, response.model_spec.signature_name = served.version, signature_name
        for name in request.output_filter or outputs:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
        return response

    def GetModelMetadata(self, request, context):
        if list(request.metadata_field) != ["signature_def"]:
            raise InvalidArgument(f"metadata_field must be ['signature_def'], got {list(request.metadata_field)}")
        served = self.resolve(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name, response.model_spec.version.value = served.name, served.version
        response.metadata["signature_def"].Pack(get_model_metadata_pb2.SignatureDefMap(
            signature_def=served.signature_defs))
        return response

    def GetModelStatus(self, request, context):
        name, version, label = _spec(request.model_spec)
        if label:
            version = self._manager.get(name, label=label).version
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self._manager.status(name, version):
            entry = response.model_version_status.add(version=status.version, state=status.state)
            # tensorflow.error.Code: OK = 0, UNKNOWN = 2.
            entry.status.error_code, entry.status.error_message = (2 if status.error else 0), status.error
        return response

    def HandleReloadConfigRequest(self, request, context):
        check_model_config(request.config, source="ReloadConfigRequest")  # a ConfigError: INVALID_ARGUMENT
        # Every base path is checked before anything touches the disk.
        for model in request.config.model_config_list.config if self._roots is not None else ():
            path = model.base_path
            if "://" in path or "\x00" in path:
                raise InvalidArgument(f"model {model.name!r}: base_path {path!r} is not a local path")
            if not any(os.path.commonpath([os.path.abspath(path), r]) == r for r in self._roots):
                raise InvalidArgument(f"model {model.name!r}: base_path {path!r} is outside the allowed model roots "
                                      "(--allowed_model_roots); a ReloadConfigRequest cannot point elsewhere")
        self._manager.reload_config(request.config)
        return model_management_pb2.ReloadConfigResponse()


class _StatusCodes(grpc.ServerInterceptor):
    """Every failure answers with its status code; bytes that are not the request message are
    INVALID_ARGUMENT naming it (grpcio alone answers INTERNAL, blaming the server). Each Predict
    is counted and timed in `metrics` (a metrics.Metrics), as TF Serving's PredictionServiceImpl."""

    def __init__(self, metrics=None):
        self._metrics = metrics

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        parse, answer = handler.request_deserializer, handler.unary_unary
        api = handler_call_details.method.rsplit("/", 1)[-1]
        metrics = self._metrics if api == "Predict" else None

        def deserialize(data: bytes):
            try:
                return parse(data)
            except Exception as e:
                return InvalidArgument(f"the request is not a valid {parse.__self__.DESCRIPTOR.full_name} "
                                       f"message: {e}")

        def unary_unary(request, context):
            start, status, response, version = time.perf_counter(), "OK", None, 0
            try:
                if isinstance(request, InvalidArgument):
                    raise request
                response = answer(request, context)
                return response
            except NotImplementedError:  # Classify, Regress, MultiInference: UNIMPLEMENTED, as the base class set
                raise
            except Exception as e:
                status, message = status_of(e)
                version = getattr(e, "served_version", 0)
                context.abort(getattr(grpc.StatusCode, status), message)
            finally:
                if metrics is not None:  # the answer's spec names the version that answered
                    spec = getattr(request if response is None else response, "model_spec", model_pb2.ModelSpec())
                    signature = spec.signature_name or contract.DEFAULT_SIGNATURE
                    metrics.record(spec.name, api, "GRPC", status, time.perf_counter() - start,
                                   version=version or spec.version.value, signature=signature)

        return handler._replace(request_deserializer=deserialize, unary_unary=unary_unary)


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def create_server(manager, *, host: str = "127.0.0.1", port: int = 8500, max_workers: int = 16,
                  max_message_mb: int = contract.MAX_REQUEST_MB, max_concurrent_requests: int = 64,
                  tls=None, model_roots=None, metrics=None) -> tuple[grpc.Server, int]:
    """(gRPC server bound to host:port, not started, bound port). Messages over `max_message_mb`
    and requests over `max_concurrent_requests` (running or queued; 0 = no limit) get
    RESOURCE_EXHAUSTED at once instead of piling up in memory. `tls`: a tls.ServerTls;
    `metrics`: a metrics.Metrics that counts and times each Predict."""
    limit = int(max_message_mb * 2**20)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[_StatusCodes(metrics)], maximum_concurrent_rpcs=max_concurrent_requests or None,
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                 ("grpc.so_reuseport", 0)],
    )
    servicer = Servicer(manager, model_roots)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(servicer, server)
    where = address(host, port)
    try:
        bound = server.add_insecure_port(where) if tls is None else server.add_secure_port(where, tls.grpc_credentials)
    except RuntimeError as e:
        raise ConfigError(f"cannot bind gRPC to {where}: {e}") from None
    if bound == 0:
        raise ConfigError(f"cannot bind gRPC to {where} (port in use, or a bad TLS certificate/key?)")
    return server, bound
