"""Fixtures for the serving tests: toy SavedModels built once per session."""

import json
import os
import shutil
import socket
import urllib.error
import urllib.request

import pytest

from tests.serving.toy_model import export_toy_model


@pytest.fixture(scope="session")
def toy_export(tmp_path_factory):
    """Pristine toy SavedModel version directories: {'2d': dir, '3d': dir}."""
    root = tmp_path_factory.mktemp("toy_export")
    return {
        "2d": export_toy_model(str(root / "toy2d" / "1"), ndim=2),
        "3d": export_toy_model(str(root / "toy3d" / "1"), ndim=3),
    }


def install_version(source: str, base: str, version: int) -> str:
    """Copy a version dir into base/<version> the safe way: copy aside, then rename."""
    os.makedirs(base, exist_ok=True)
    staging = os.path.join(base, f".{version}.partial")
    shutil.copytree(source, staging)
    target = os.path.join(base, str(version))
    os.rename(staging, target)
    return target


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class InProcessServer:
    """lmk-serve's gRPC and REST servers and metrics in this process, on loopback ports, for
    one model `name` served from `base`: real sockets, a real manager, no subprocess start-up."""

    def __init__(self, base: str, name: str = "toy"):
        import threading

        from lmk_tf.serving.grpc_server import create_server
        from lmk_tf.serving.manager import ModelManager, config_from_flags
        from lmk_tf.serving.metrics import Metrics
        from lmk_tf.serving.rest_server import create_rest_server

        self.metrics = Metrics()
        self.manager = ModelManager(config_from_flags(name, base), file_system_poll_wait_seconds=0)
        self.manager.start()
        self.grpc, port = create_server(self.manager, port=0, max_workers=4, metrics=self.metrics)
        self.grpc.start()
        self.rest = create_rest_server(self.manager, port=0, metrics=self.metrics)
        threading.Thread(target=self.rest.serve_forever, daemon=True).start()
        self.address, self.rest_url = f"127.0.0.1:{port}", f"http://127.0.0.1:{self.rest.server_address[1]}"

    def stop(self):
        self.rest.shutdown()
        self.rest.server_close()
        self.grpc.stop(grace=None).wait()
        self.manager.stop()


@pytest.fixture(scope="module")
def toy_server(tmp_path_factory, toy_export):
    """An in-process server of the 2D toy model as "toy", version 1."""
    base = str(tmp_path_factory.mktemp("in_process") / "toy")
    install_version(toy_export["2d"], base, 1)
    server = InProcessServer(base)
    yield server
    server.stop()


def rest_json(base_url: str, path: str, body=None):
    """(HTTP status, JSON answer) of a GET (no body) or POST to a REST server."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
