"""TF Serving's REST API (the subset clients use) on a threading HTTP server:

  GET  /v1/models/<name>[/versions/<v>|/labels/<l>][/metadata]  status [signature_defs]
  POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict     predictions

  GET  /monitoring/prometheus/metrics                           metrics (metrics.py)

As TF Serving: {"inputs": {...}} -> {"outputs": {...}}, {"instances": [...]} ->
{"predictions": [...]}, a single output bare, {"b64": ...} for binary inputs (a
PNG/JPEG for serving_encoded) and outputs named *_bytes, other strings as JSON strings,
errors {"error": "..."} with 400, 404, 413 or 503. Instances are stacked along dim 0
for a batched signature (serving_batch: every input's first dimension is the batch);
for any other each instance runs on its own, as it cannot take TF Serving's stack.
"""

import base64
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from lmk_tf.errors import ConfigError
from lmk_tf.export import contract
from lmk_tf.serving import metrics as metrics_module
from lmk_tf.serving import validation
from lmk_tf.serving.grpc_server import Servicer

log = logging.getLogger(__name__)
HTTP_STATUS = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 413, "UNAVAILABLE": 503}

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                   r"(?P<suffix>/metadata|:[a-z]+)?/?$")


def to_json(name: str, value: np.ndarray):
    """An output as TF Serving's REST API writes it: strings as text, `*_bytes` as base64."""
    if value.dtype.kind not in "SO":
        return value.tolist()
    binary = name.endswith("_bytes")
    return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()} if binary else b.decode("utf-8", "replace"),
                        otypes=[object])(value).tolist()


def _from_json(value):
    """{"b64": text} -> bytes, at any depth of nested lists, as TF Serving reads binary inputs."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return [_from_json(v) for v in value] if isinstance(value, list) else value


def predict_json(served, body: dict) -> dict:
    """Answer a TF Serving REST predict body with one loaded version."""
    signature_name = body.get("signature_name") or contract.DEFAULT_SIGNATURE
    inputs = served.signature(signature_name).spec.inputs
    if ("inputs" in body) == ("instances" in body):
        raise validation.InvalidArgument("the body must have exactly one of 'instances' or 'inputs'")

    def run(value, key):
        if not isinstance(value, dict) or set(value) == {"b64"}:
            if len(inputs) != 1:  # a bare value is allowed for one-input signatures only
                raise validation.InvalidArgument(f"'{key}' must name the inputs {', '.join(map(repr, sorted(inputs)))}")
            value = {next(iter(inputs)): value}
        value = {k: _from_json(v) for k, v in value.items()}
        return {k: to_json(k, v) for k, v in served.predict_arrays(signature_name, value, cast=True).items()}

    def bare(outputs):
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs

    if "inputs" in body:
        return {"outputs": bare(run(body["inputs"], "inputs"))}
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise validation.InvalidArgument("'instances' must be a non-empty list")
    if not inputs or not all(s.shape.rank and s.shape[0] is None for s in inputs.values()):
        return {"predictions": [bare(run(instance, "instances")) for instance in instances]}
    if all(isinstance(i, dict) and set(i) != {"b64"} for i in instances):
        names = set().union(*instances)
        instances = {k: [i.get(k) for i in instances] for k in names}  # a missing one fails as a ragged input
    outputs = run(instances, "instances")
    return {"predictions": [bare({k: v[n] for k, v in outputs.items()}) for n in range(len(body["instances"]))]}


class _Handler(BaseHTTPRequestHandler):
    server_version = "lmk-serve"
    servicer: Servicer = None  # these four are set on the subclass made by create_rest_server
    max_body_bytes = 0
    slots: threading.Semaphore = None  # bounds concurrent :predict calls
    metrics: metrics_module.Metrics | None = None

    def log_message(self, format, *args):
        log.debug("rest %s - " + format, self.address_string(), *args)

    def _answer(self) -> None:
        start, model, api, self.served = time.perf_counter(), "", "", {}
        try:
            if self.metrics is not None and self.path.split("?", 1)[0] == metrics_module.PATH:
                return self._reply(200, self.metrics.exposition(), metrics_module.CONTENT_TYPE)
            spec, suffix = self._route()
            model, api = spec.name, suffix[1:] if suffix.startswith(":") else ""
            code, body, status = 200, (self._get if self.command == "GET" else self._post)(spec, suffix), "OK"
        except Exception as e:
            status, message = validation.status_of(e)
            code, body = HTTP_STATUS.get(status, 500), {"error": message}
        if model and self.metrics is not None:  # as TF Serving's HttpServer: every call that names a model
            self.metrics.record(model, api, "REST", status, time.perf_counter() - start, **self.served)
        self._reply(code, json.dumps(body).encode("utf-8"), "application/json")

    def _reply(self, code: int, data: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def _route(self):
        """The path's ModelSpec (a version must be an integer) and what follows it."""
        match = _PATH.match(self.path.split("?", 1)[0])
        if not match:
            raise validation.NotFound(f"malformed request: {self.command} {self.path}")
        spec = model_pb2.ModelSpec(name=match["name"])
        if match["version"] is not None:
            if not match["version"].isdigit():
                raise validation.InvalidArgument(f"version must be an integer, got {match['version']!r}")
            spec.version.value = int(match["version"])
        elif match["label"] is not None:
            spec.version_label = match["label"]
        return spec, match["suffix"] or ""

    def _get(self, spec, suffix):
        # TF Serving's REST status and metadata are its gRPC responses as JSON.
        if suffix == "/metadata":
            response = self.servicer.GetModelMetadata(
                get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"]), None)
        elif suffix == "":
            response = self.servicer.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec=spec), None)
        else:
            raise validation.NotFound(f"malformed request: GET {self.path}")
        body = json_format.MessageToDict(response, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
        body.get("metadata", {}).get("signature_def", {}).pop("@type", None)
        return body

    def _post(self, spec, suffix):
        if suffix != ":predict":
            raise validation.NotFound(f"malformed request: POST {self.path} (only :predict is served)")
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit() or int(length) > self.max_body_bytes:
            self.close_connection = True  # the body is not read; the connection is unusable
            if not length.isdigit():
                raise validation.InvalidArgument("Content-Length must be a non-negative integer")
            raise validation.ResourceExhausted(f"request body of {length} bytes is over the limit of "
                                               f"{self.max_body_bytes} (--max_request_mb)")
        # The slot is taken before the body is read, so the bodies held in memory are bounded too.
        if not self.slots.acquire(blocking=False):
            self.close_connection = True
            raise validation.Unavailable("too many concurrent requests (--max_concurrent_requests); try again")
        try:
            try:
                body = json.loads(self.rfile.read(int(length)) or b"null")
            except ValueError as e:
                raise validation.InvalidArgument(f"JSON Parse error: {e}") from None
            if not isinstance(body, dict):
                raise validation.InvalidArgument("request body must be a JSON object")
            served = self.servicer.resolve(spec)
            self.served = {"version": served.version,
                           "signature": body.get("signature_name") or contract.DEFAULT_SIGNATURE}
            return predict_json(served, body)
        finally:
            self.slots.release()


def create_rest_server(manager, *, host: str = "127.0.0.1", port: int = 8501,
                       max_request_mb: int = contract.MAX_REQUEST_MB, max_concurrent_requests: int = 0,
                       tls=None, metrics=None) -> ThreadingHTTPServer:
    """A bound REST server (`max_concurrent_requests` 0: no limit): `serve_forever()` in a thread,
    `shutdown()` to stop. `tls` (a tls.ServerTls, the gRPC port's) makes it HTTPS; the
    handshake happens in the request's thread, so a slow client cannot stall the accept loop.
    `metrics` (a metrics.Metrics, the gRPC server's) counts each call and answers its PATH."""
    handler = type("Handler", (_Handler,), {
        "servicer": Servicer(manager), "max_body_bytes": int(max_request_mb * 2**20),
        "slots": threading.Semaphore(max_concurrent_requests or 2**30), "metrics": metrics})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise ConfigError(f"cannot bind REST to {host}:{port}: {e.strerror}") from None
    if tls is not None:
        server.socket = tls.ssl_context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.daemon_threads = True
    return server
