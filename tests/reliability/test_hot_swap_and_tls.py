"""Hot swap under load, TLS, loopback by default (docs/reliability.md)."""

import functools
import os
import shutil
import ssl
import subprocess
import threading
import time
import urllib.request
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, predict_pb2

from lmk_tf.image import Image
from lmk_tf.serving import client
from lmk_tf.serving.server import ServerOptions, is_loopback
from tests.serving.conftest import free_port, install_version, toy_export  # noqa: F401 - fixture
from tests.serving.server_process import REPO, ServerProcess
from tests.serving.toy_model import expected

IMAGE = np.random.default_rng(5).random((16, 12), np.float32)
SPACING = np.array([0.5, 0.25], np.float32)
# Bound on anything that waits for TensorFlow to start or load a model: generous for a
# loaded 2-core machine running several commands at once; a passing run never waits it out.
STARTUP_TIMEOUT = 300


def predict_request():
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(IMAGE[..., None]))
    request.inputs["spacing"].CopyFrom(tf.make_tensor_proto(SPACING))
    return request


class Hammer:
    """Clients sending Predict in a loop until `finish` (at the latest `limit_seconds` from now).

    A deadline, not a request count: on a fast machine counted requests can all
    be answered before the swap they are meant to overlap.
    """

    def __init__(self, address, clients=4, limit_seconds=STARTUP_TIMEOUT):
        self.address = address
        self.deadline = time.monotonic() + limit_seconds
        self.lock = threading.Lock()
        self.versions, self.failures, self.wrong = [], [], 0
        self.threads = [threading.Thread(target=self._run) for _ in range(clients)]
        self.want = expected(IMAGE, SPACING)["landmarks_mm"]

    def _run(self):
        channel = client.make_channel(self.address)
        stub = client.make_stub(channel)
        request = predict_request()
        while time.monotonic() < self.deadline:
            try:
                response = stub.Predict(request, timeout=30)
                mm = tf.make_ndarray(response.outputs["landmarks_mm"])
                with self.lock:
                    self.versions.append(response.model_spec.version.value)
                    if not np.allclose(mm, self.want, rtol=1e-5, atol=1e-5):
                        self.wrong += 1
            except grpc.RpcError as e:
                with self.lock:
                    self.failures.append(f"{e.code().name}: {e.details()}")
        channel.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self, after=0.0):
        """Let the clients run `after` more seconds, then stop."""
        self.deadline = min(self.deadline, time.monotonic() + after)

    def __exit__(self, *exc):
        self.finish()
        for t in self.threads:
            t.join(60)

    def wait_for_version(self, version, timeout=STARTUP_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.versions[-20:] and all(v == version for v in self.versions[-20:]):
                    return True
            time.sleep(0.05)
        return False


def statuses(address, name="toy"):
    channel = grpc.insecure_channel(address)
    try:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
        return {s.version: get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
                for s in response.model_version_status}
    finally:
        channel.close()


@pytest.mark.slow
def test_version_dropped_in_under_load_takes_over_and_removal_unloads_without_a_failure(
        tmp_path, toy_export):  # noqa: F811
    base = str(tmp_path / "toy")
    install_version(toy_export["2d"], base, 1)
    port = free_port()
    server = ServerProcess(
        [f"--port={port}", "--rest_api_port=0", "--model_name=toy", f"--model_base_path={base}",
         "--file_system_poll_wait_seconds=0.2", "--grpc_max_threads=8"],
        str(tmp_path / "server.log"),
    )
    address = f"127.0.0.1:{port}"
    try:
        server.wait_available(address, ["toy"], timeout=STARTUP_TIMEOUT)
        with Hammer(address) as hammer:
            assert hammer.wait_for_version(1)
            install_version(toy_export["2d"], base, 2)  # copied aside, renamed in
            assert hammer.wait_for_version(2), statuses(address)
            assert statuses(address) == {2: "AVAILABLE", 1: "END"}
            shutil.rmtree(os.path.join(base, "2"))  # remove the serving version
            assert hammer.wait_for_version(1), statuses(address)
            assert statuses(address) == {2: "END", 1: "AVAILABLE"}
            hammer.finish(after=1.0)  # traffic continues past the last swap
        assert hammer.failures == [], hammer.failures[:5]
        assert hammer.wrong == 0
        assert len(hammer.versions) > 100 and set(hammer.versions) == {1, 2}
    finally:
        returncode, output = server.stop()
    assert returncode == 0, output
    assert "version 2 unloaded (directory removed)" in output


# ----- TLS -----

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1/localhost, made with the openssl CLI."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "server.crt"), str(d / "server.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.mark.slow
def test_tls_server_answers_tls_clients_only(tmp_path, toy_export, certificate):  # noqa: F811
    cert, key = certificate
    base = str(tmp_path / "toy")
    install_version(toy_export["2d"], base, 1)
    port, rest_port = free_port(), free_port()
    server = ServerProcess(
        [f"--port={port}", f"--rest_api_port={rest_port}", "--model_name=toy",
         f"--model_base_path={base}", f"--ssl_cert_file={cert}", f"--ssl_key_file={key}"],
        str(tmp_path / "server.log"),
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        secure = client.make_channel(address, ssl_ca_file=cert)
        stub = client.make_stub(secure)
        image = Image(IMAGE, tuple(float(s) for s in SPACING))
        while True:  # wait_available speaks plaintext; poll with the TLS client instead
            try:
                result = client.predict_image(stub, "toy", image, timeout=5)
                break
            except Exception:
                assert server.proc.poll() is None and time.monotonic() < deadline, server.output()
                time.sleep(0.2)
        np.testing.assert_allclose([lm["mm"] for lm in result["landmarks"]],
                                   expected(IMAGE, SPACING)["landmarks_mm"], rtol=1e-5)
        secure.close()
        plain = grpc.insecure_channel(address)
        with pytest.raises(grpc.RpcError) as info:
            client.make_stub(plain).Predict(predict_request(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        plain.close()
        context = ssl.create_default_context(cafile=cert)
        with urllib.request.urlopen(f"https://127.0.0.1:{rest_port}/v1/models/toy", timeout=10,
                                    context=context) as response:
            assert response.status == 200
    finally:
        returncode, output = server.stop()
    assert returncode == 0, output
    assert f"listening on gRPC {address}, REST 127.0.0.1:{rest_port} with TLS" in output


@pytest.mark.slow
def test_bad_tls_files_are_one_error_line(tmp_path, certificate):
    cert, key = certificate
    cases = {
        "only_cert": ([f"--ssl_cert_file={cert}"], "needs both --ssl_cert_file and --ssl_key_file"),
        "key_is_not_pem": ([f"--ssl_cert_file={cert}", f"--ssl_key_file={REPO}/setup.py"],
                           "is not a PEM file"),
        "swapped": ([f"--ssl_cert_file={key}", f"--ssl_key_file={cert}"],
                    "not a matching TLS certificate and key"),
    }
    (tmp_path / "m" / "1").mkdir(parents=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = functools.partial(subprocess.run, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=STARTUP_TIMEOUT)
    with futures.ThreadPoolExecutor(len(cases)) as pool:  # three TensorFlow start-ups at once
        jobs = {name: pool.submit(run, [os.sys.executable, "-m", "pipelines.serve", "--port=0",
                                        "--rest_api_port=0", f"--model_base_path={tmp_path / 'm'}", *flags])
                for name, (flags, _) in cases.items()}
    for name, (_, message) in cases.items():
        result = jobs[name].result()
        assert result.returncode == 2, (name, result.stderr[-2000:])
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and message in errors[0], (name, result.stderr[-2000:])


def test_loopback_is_the_default_and_other_interfaces_are_explicit():
    from absl import flags

    import pipelines.serve  # noqa: F401 - defines the flags

    assert ServerOptions().host == "127.0.0.1"
    assert flags.FLAGS["host"].default == "127.0.0.1"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.1.2.3")
