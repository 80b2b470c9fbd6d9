"""The embedded server as one call: models, gRPC and REST, until told to stop.

`pipelines/serve.py` only turns flags into `ServerOptions`; tests and the
benchmarks can run the same thing in a subprocess or a thread.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import sys
import threading

from lmk_tf.errors import ConfigError
from lmk_tf.serving import model_config as mc
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
    max_request_mb: int = 512
    max_image_elements: int = 64 * 2**20
    max_concurrent_requests: int = 64
    ssl_cert_file: str | None = None
    ssl_key_file: str | None = None
    allowed_model_roots: tuple[str, ...] | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tls_files(options: ServerOptions):
    """The TLS files to use, or None; both or neither must be given."""
    from lmk_tf.serving.grpc_server import TlsFiles

    if bool(options.ssl_cert_file) != bool(options.ssl_key_file):
        raise ConfigError("TLS needs both --ssl_cert_file and --ssl_key_file")
    if not options.ssl_cert_file:
        return None
    import ssl

    tls = TlsFiles(options.ssl_cert_file, options.ssl_key_file)
    tls.read()  # unreadable or non-PEM files fail here, before anything is loaded
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(
            f"{tls.cert_file}, {tls.key_file}: not a matching TLS certificate and key ({e})"
        ) from None
    return tls


def model_roots(options: ServerOptions, config) -> list[str]:
    """Where a ReloadConfigRequest may point: the flag, else the configured base paths' parents."""
    if options.allowed_model_roots is not None:
        return [os.path.abspath(r) for r in options.allowed_model_roots]
    return sorted({
        os.path.dirname(mc.resolve_base_path(m.base_path))
        for m in config.model_config_list.config
    })


def load_config(options: ServerOptions):
    if options.model_config_file and options.model_base_path:
        raise ConfigError("give --model_config_file or --model_base_path, not both")
    if options.model_config_file:
        return mc.read_model_config(options.model_config_file)
    if options.model_base_path:
        return mc.config_from_flags(options.model_name, options.model_base_path)
    raise ConfigError("nothing to serve: give --model_config_file or --model_base_path")


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run_server(options: ServerOptions, stop: threading.Event, *, out=sys.stdout) -> None:
    """Serve until `stop` is set; prints the address and each version's state to `out`."""
    from lmk_tf.serving.grpc_server import create_server
    from lmk_tf.serving.manager import AVAILABLE, ModelManager
    from lmk_tf.serving.rest_server import create_rest_server, start_in_thread

    config = load_config(options)
    tls = tls_files(options)
    where = {}

    def on_event(name, version, state, message):
        if state == AVAILABLE:
            line = f"model {name!r} version {version} is AVAILABLE on gRPC {where['grpc']}"
            if "rest" in where:
                line += f" and REST http://{where['rest']}/v1/models/{name}"
        elif state == "FAILED":
            line = f"model {name!r} version {version} failed to load (will retry): {message}"
        else:
            line = f"model {name!r} version {version} unloaded ({message})"
        print(f"lmk-serve: {line}", file=out, flush=True)

    manager = ModelManager(
        config,
        config_path=options.model_config_file,
        file_system_poll_wait_seconds=options.file_system_poll_wait_seconds,
        config_poll_wait_seconds=options.model_config_file_poll_wait_seconds,
        limits=Limits(max_elements=options.max_image_elements),
        on_event=on_event,
    )
    grpc_server, port = create_server(
        manager, host=options.host, port=options.port,
        max_workers=options.grpc_max_threads, max_message_mb=options.max_request_mb,
        max_concurrent_requests=options.max_concurrent_requests, tls=tls,
        model_roots=model_roots(options, config),
    )
    where["grpc"] = _address(options.host, port)
    rest = None
    if options.rest_api_port:
        rest = create_rest_server(
            manager, host=options.host, port=options.rest_api_port,
            max_request_mb=options.max_request_mb,
            max_concurrent_requests=options.max_concurrent_requests, tls=tls,
        )
        where["rest"] = _address(options.host, rest.server_address[1])
    # Ports open first so clients can poll GetModelStatus while models load.
    grpc_server.start()
    if rest is not None:
        start_in_thread(rest)
    print(f"lmk-serve: listening on gRPC {where['grpc']}"
          + (f", REST {where['rest']}" if rest else " (REST off)")
          + (" with TLS" if tls else ""), file=out, flush=True)
    if not is_loopback(options.host) and tls is None:
        print(f"lmk-serve: warning: --host={options.host} serves other machines without TLS; "
              "give --ssl_cert_file and --ssl_key_file", file=out, flush=True)
    try:
        manager.start()
        while not stop.wait(0.5):
            pass
    finally:
        print("lmk-serve: stopping", file=out, flush=True)
        if rest is not None:
            rest.shutdown()
            rest.server_close()
        grpc_server.stop(grace=5).wait()
        manager.stop()
