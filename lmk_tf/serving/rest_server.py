"""TF Serving's REST API (the subset clients use) on a threading HTTP server.

  GET  /v1/models/<name>[/versions/<v>|/labels/<l>]           model status
  GET  /v1/models/<name>[/versions/<v>|/labels/<l>]/metadata  signature_defs
  POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict   predictions

Request and response bodies follow TF Serving: {"inputs": {...}} -> {"outputs":
{...}} (columnar) and {"instances": [...]} -> {"predictions": [...]} (row).
One difference: TF Serving stacks instances into a batch, which an unbatched
signature such as serving_default (one image of any size) cannot take; here
each instance is run on its own, so both formats work. Errors are
{"error": "..."} with 400 (bad request) or 404 (unknown model/version/label).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from google.protobuf import json_format

from lmk_tf.errors import ConfigError
from lmk_tf.serving.grpc_server import signature_def_map
from lmk_tf.serving.manager import ModelManager
from lmk_tf.serving.status import HTTP_STATUS, InvalidArgument, NotFound, ServingError, code_of

log = logging.getLogger(__name__)

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:[a-z]+)?/?$"
)


def _jsonable(value: np.ndarray):
    if value.dtype.kind in "SO":
        return np.vectorize(lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else b,
                            otypes=[object])(value).tolist()
    return value.tolist()


class _Handler(BaseHTTPRequestHandler):
    server_version = "lmk-serve"
    manager: ModelManager = None  # set on the subclass made by create_rest_server
    max_body_bytes: int = 0
    busy: threading.Semaphore | None = None  # bounds concurrent :predict calls

    def log_message(self, format, *args):
        log.debug("rest %s - " + format, self.address_string(), *args)

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: Exception) -> None:
        code = code_of(error)
        if not isinstance(error, ServingError):
            log.exception("unexpected error answering a REST request")
        self._send(HTTP_STATUS.get(code, 500), {"error": str(error)})

    def _route(self):
        match = _PATH.match(self.path.split("?", 1)[0])
        if not match:
            raise NotFound(f"malformed request: {self.command} {self.path}")
        version = match["version"]
        if version is not None:
            if not version.isdigit():
                raise InvalidArgument(f"version must be an integer, got {version!r}")
            version = int(version)
        return match["name"], version, match["label"], match["suffix"] or ""

    def do_GET(self):
        try:
            name, version, label, suffix = self._route()
            if suffix == "/metadata":
                served = self.manager.get(name, version=version, label=label)
                self._send(200, {
                    "model_spec": {"name": name, "signature_name": "", "version": str(served.version)},
                    "metadata": {"signature_def": json_format.MessageToDict(
                        signature_def_map(served), preserving_proto_field_name=True,
                        always_print_fields_with_no_presence=True)},
                })
            elif suffix == "":
                if label:
                    version = self.manager.get(name, label=label).version
                statuses = self.manager.status(name, version)
                self._send(200, {"model_version_status": [
                    {
                        "version": str(s.version),
                        "state": s.state,
                        "status": {"error_code": "UNKNOWN" if s.error else "OK",
                                   "error_message": s.error},
                    }
                    for s in statuses
                ]})
            else:
                raise NotFound(f"malformed request: GET {self.path}")
        except Exception as e:
            self._error(e)

    def do_POST(self):
        try:
            name, version, label, suffix = self._route()
            if suffix != ":predict":
                raise NotFound(f"malformed request: POST {self.path} (only :predict is served)")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                raise InvalidArgument("Content-Length must be a non-negative integer")
            if length > self.max_body_bytes:
                self.close_connection = True  # the body is not read; the connection is unusable
                self._send(413, {"error": f"request body of {length} bytes is over the "
                                          f"limit of {self.max_body_bytes} (--max_request_mb)"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError as e:
                raise InvalidArgument(f"JSON Parse error: {e}") from None
            if not isinstance(body, dict):
                raise InvalidArgument("request body must be a JSON object")
            served = self.manager.get(name, version=version, label=label)
            if self.busy is not None and not self.busy.acquire(blocking=False):
                self._send(503, {"error": "too many concurrent requests "
                                          "(--max_concurrent_requests); try again"})
                return
            try:
                self._send(200, predict_json(served, body))
            finally:
                if self.busy is not None:
                    self.busy.release()
        except Exception as e:
            self._error(e)


def predict_json(served, body: dict) -> dict:
    """Answer a TF Serving REST predict body with one loaded version."""
    signature_name = body.get("signature_name") or "serving_default"
    spec = served.signature(signature_name).spec
    has_inputs, has_instances = "inputs" in body, "instances" in body
    if has_inputs == has_instances:
        raise InvalidArgument("the body must have exactly one of 'instances' or 'inputs'")

    def as_named(value, key):
        if isinstance(value, dict):
            return value
        if len(spec.inputs) == 1:  # a bare value is allowed for one-input signatures
            return {next(iter(spec.inputs)): value}
        raise InvalidArgument(
            f"'{key}' must name the inputs {', '.join(map(repr, sorted(spec.inputs)))}"
        )

    def pack(outputs):
        if len(outputs) == 1:
            return _jsonable(next(iter(outputs.values())))
        return {k: _jsonable(v) for k, v in outputs.items()}

    if has_inputs:
        outputs = served.predict_arrays(signature_name, as_named(body["inputs"], "inputs"), cast=True)
        return {"outputs": pack(outputs)}
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise InvalidArgument("'instances' must be a non-empty list")
    return {"predictions": [
        pack(served.predict_arrays(signature_name, as_named(i, "instances"), cast=True))
        for i in instances
    ]}


def create_rest_server(
    manager: ModelManager, *, host: str = "127.0.0.1", port: int = 8501, max_request_mb: int = 512,
    max_concurrent_requests: int = 0, tls=None,
) -> ThreadingHTTPServer:
    """A bound REST server; run `serve_forever()` in a thread and `shutdown()` to stop.

    `tls` (grpc_server.TlsFiles) makes it HTTPS with the same certificate as gRPC;
    the handshake happens in the request's thread, so a slow client cannot stall
    the accept loop.
    """
    busy = threading.Semaphore(max_concurrent_requests) if max_concurrent_requests else None
    handler = type("Handler", (_Handler,), {"manager": manager, "busy": busy,
                                            "max_body_bytes": int(max_request_mb * 2**20)})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise ConfigError(f"cannot bind REST to {host}:{port}: {e.strerror}") from None
    if tls is not None:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ssl.SSLError) as e:
            server.server_close()
            raise ConfigError(f"{tls.cert_file}, {tls.key_file}: not a usable TLS certificate/key "
                              f"pair ({e})") from None
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
    server.daemon_threads = True
    return server


def start_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="rest", daemon=True)
    thread.start()
    return thread
