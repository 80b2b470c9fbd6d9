"""TF Serving's REST API (the subset clients use) on a threading HTTP server:

  GET  /v1/models/<name>[/versions/<v>|/labels/<l>][/metadata]  status [signature_defs]
  POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict     predictions

As TF Serving: {"inputs": {...}} -> {"outputs": {...}}, {"instances": [...]} ->
{"predictions": [...]}, a single output bare, strings as JSON strings ({"b64": ...}
for outputs named *_bytes), errors {"error": "..."} with 400, 404, 413 or 503. But
each instance runs on its own: an unbatched signature cannot take TF Serving's stack.
"""

import base64
import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from lmk_tf.errors import ConfigError
from lmk_tf.export import contract
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


def predict_json(served, body: dict) -> dict:
    """Answer a TF Serving REST predict body with one loaded version."""
    signature_name = body.get("signature_name") or contract.DEFAULT_SIGNATURE
    inputs = served.signature(signature_name).spec.inputs
    if ("inputs" in body) == ("instances" in body):
        raise validation.InvalidArgument("the body must have exactly one of 'instances' or 'inputs'")

    def run(value, key):
        if not isinstance(value, dict):
            if len(inputs) != 1:  # a bare value is allowed for one-input signatures only
                raise validation.InvalidArgument(f"'{key}' must name the inputs {', '.join(map(repr, sorted(inputs)))}")
            value = {next(iter(inputs)): value}
        outputs = {k: to_json(k, v) for k, v in served.predict_arrays(signature_name, value, cast=True).items()}
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs

    if "inputs" in body:
        return {"outputs": run(body["inputs"], "inputs")}
    if not isinstance(body["instances"], list) or not body["instances"]:
        raise validation.InvalidArgument("'instances' must be a non-empty list")
    return {"predictions": [run(instance, "instances") for instance in body["instances"]]}


class _Handler(BaseHTTPRequestHandler):
    server_version = "lmk-serve"
    servicer: Servicer = None  # these three are set on the subclass made by create_rest_server
    max_body_bytes = 0
    slots: threading.Semaphore = None  # bounds concurrent :predict calls

    def log_message(self, format, *args):
        log.debug("rest %s - " + format, self.address_string(), *args)

    def _answer(self) -> None:
        try:
            code, body = 200, (self._get if self.command == "GET" else self._post)(*self._route())
        except Exception as e:
            status, message = validation.status_of(e)
            code, body = HTTP_STATUS.get(status, 500), {"error": message}
        data = json.dumps(body).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
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
            return predict_json(self.servicer.resolve(spec), body)
        finally:
            self.slots.release()


def create_rest_server(manager, *, host: str = "127.0.0.1", port: int = 8501,
                       max_request_mb: int = contract.MAX_REQUEST_MB, max_concurrent_requests: int = 0,
                       tls=None) -> ThreadingHTTPServer:
    """A bound REST server (`max_concurrent_requests` 0: no limit): `serve_forever()` in a thread,
    `shutdown()` to stop. `tls` (a tls.ServerTls, the gRPC port's) makes it HTTPS; the
    handshake happens in the request's thread, so a slow client cannot stall the accept loop."""
    handler = type("Handler", (_Handler,), {
        "servicer": Servicer(manager), "max_body_bytes": int(max_request_mb * 2**20),
        "slots": threading.Semaphore(max_concurrent_requests or 2**30)})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise ConfigError(f"cannot bind REST to {host}:{port}: {e.strerror}") from None
    if tls is not None:
        server.socket = tls.ssl_context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.daemon_threads = True
    return server
