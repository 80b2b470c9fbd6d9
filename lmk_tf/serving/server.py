"""The embedded server as one call: models, gRPC and REST until told to stop (lmk-serve's flags
are `ServerOptions`)."""

import dataclasses
import ipaddress
import os
import sys
import threading

from lmk_tf.errors import ConfigError
from lmk_tf.export import contract
from lmk_tf.serving.validation import Limits


@dataclasses.dataclass
class ServerOptions:
    """Settings of lmk-serve; names and meanings follow tensorflow_model_server's flags."""

    host: str = "127.0.0.1"
    port: int = 8500
    rest_api_port: int = 8501
    model_config_file: str | None = None
    model_config_file_poll_wait_seconds: float = 0
    file_system_poll_wait_seconds: float = 1.0
    model_name: str = "default"
    model_base_path: str | None = None
    grpc_max_threads: int = 16
    max_request_mb: int = contract.MAX_REQUEST_MB
    max_image_elements: int = Limits.max_elements
    max_concurrent_requests: int = 64
    ssl_cert_file: str | None = None
    ssl_key_file: str | None = None
    allowed_model_roots: tuple[str, ...] | None = None


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_server(options: ServerOptions, stop: threading.Event, *, out=sys.stdout) -> None:
    """Serve until `stop` is set; prints the address and each version's state to `out`."""
    from lmk_tf.serving.grpc_server import address, create_server
    from lmk_tf.serving.manager import AVAILABLE, ModelManager, config_from_flags, read_model_config
    from lmk_tf.serving.metrics import Metrics
    from lmk_tf.serving.rest_server import create_rest_server
    from lmk_tf.serving.tls import server_tls

    if bool(options.model_config_file) == bool(options.model_base_path):
        raise ConfigError("give --model_config_file or --model_base_path, not both" if options.model_config_file
                          else "nothing to serve: give --model_config_file or --model_base_path")
    config = (read_model_config(options.model_config_file) if options.model_config_file
              else config_from_flags(options.model_name, options.model_base_path))
    # Where a ReloadConfigRequest may point: the flag, else the configured base paths' parents.
    roots = ([os.path.abspath(r) for r in options.allowed_model_roots] if options.allowed_model_roots is not None
             else sorted({os.path.dirname(os.path.abspath(m.base_path)) for m in config.model_config_list.config}))
    tls = server_tls(options.ssl_cert_file, options.ssl_key_file)
    scheme = "https" if tls else "http"
    say = lambda line: print(f"lmk-serve: {line}", file=out, flush=True)  # noqa: E731
    where = {}

    def on_event(name, version, state, message):
        rest = f" and REST {scheme}://{where['rest']}/v1/models/{name}" if "rest" in where else ""
        say(f"model {name!r} version {version} " + {
            AVAILABLE: f"is AVAILABLE on gRPC {where['grpc']}{rest}",
            "FAILED": f"failed to load (will retry): {message}"}.get(state, f"unloaded ({message})"))

    manager = ModelManager(config, config_path=options.model_config_file,
                           file_system_poll_wait_seconds=options.file_system_poll_wait_seconds,
                           config_poll_wait_seconds=options.model_config_file_poll_wait_seconds,
                           limits=Limits(max_elements=options.max_image_elements), on_event=on_event)
    shared = dict(max_concurrent_requests=options.max_concurrent_requests, tls=tls, host=options.host,
                  metrics=Metrics())
    grpc_server, port = create_server(manager, port=options.port, max_workers=options.grpc_max_threads,
                                      max_message_mb=options.max_request_mb, model_roots=roots, **shared)
    where["grpc"] = address(options.host, port)
    rest = options.rest_api_port and create_rest_server(manager, port=options.rest_api_port,
                                                        max_request_mb=options.max_request_mb, **shared)
    # Ports open first so clients can poll GetModelStatus while models load.
    grpc_server.start()
    if rest:
        threading.Thread(target=rest.serve_forever, name="rest", daemon=True).start()
        where["rest"] = address(options.host, rest.server_address[1])
    say(f"listening on gRPC {where['grpc']}" + (f", REST {where['rest']}" if rest else " (REST off)")
        + (" with TLS" if tls else ""))
    if not is_loopback(options.host) and tls is None:
        say(f"warning: --host={options.host} serves other machines without TLS; "
            "give --ssl_cert_file and --ssl_key_file")
    try:
        manager.start()
        while not stop.wait(0.5):  # a signal handler sets `stop`
            pass
    finally:
        say("stopping")
        if rest:
            rest.shutdown()
            rest.server_close()
        grpc_server.stop(grace=5).wait()
        manager.stop()
