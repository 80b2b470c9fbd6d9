"""The bad-request catalogue against a real lmk-serve process, a seeded fuzz run,
and the limits (message size, concurrency) and path safety (docs/reliability.md).

One server per module on a free 127.0.0.1 port, small limits so the hostile
cases are cheap. After every hostile request the server must still answer a
good one correctly; at the end it must stop cleanly on SIGTERM.
"""

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from lmk_tf.serving.grpc_server import create_server
from lmk_tf.serving.manager import ModelManager, config_from_flags
from lmk_tf.serving.rest_server import create_rest_server
from tests.serving.conftest import free_port, install_version, toy_export  # noqa: F401 - fixture
from tests.serving.server_process import ServerProcess
from tests.serving.toy_model import expected

MAX_REQUEST_MB = 2
MAX_ELEMENTS = 200_000
PREDICT = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture(scope="module")
def server(tmp_path_factory, toy_export):  # noqa: F811
    root = tmp_path_factory.mktemp("catalogue")
    base = str(root / "models" / "toy")
    install_version(toy_export["2d"], base, 1)
    outside = str(root / "elsewhere" / "sneaky")  # a real model outside the model roots
    install_version(toy_export["2d"], outside, 1)
    grpc_port, rest_port = free_port(), free_port()
    proc = ServerProcess(
        [f"--port={grpc_port}", f"--rest_api_port={rest_port}", "--model_name=toy",
         f"--model_base_path={base}", "--file_system_poll_wait_seconds=0",
         "--grpc_max_threads=4", f"--max_request_mb={MAX_REQUEST_MB}",
         f"--max_image_elements={MAX_ELEMENTS}"],
        str(root / "server.log"),
    )
    address = f"127.0.0.1:{grpc_port}"
    try:
        proc.wait_available(address, ["toy"])
        # The client's own limit is higher than the server's, so oversized
        # messages reach the server and are refused there.
        channel = grpc.insecure_channel(address, options=[
            ("grpc.max_send_message_length", 64 * 2**20),
            ("grpc.max_receive_message_length", 64 * 2**20)])
        yield {
            "proc": proc, "address": address, "rest": f"http://127.0.0.1:{rest_port}",
            "channel": channel, "base": base, "outside": outside,
            "predict": prediction_service_pb2_grpc.PredictionServiceStub(channel),
            "models": model_service_pb2_grpc.ModelServiceStub(channel),
            "raw": channel.unary_unary(PREDICT, request_serializer=None,
                                       response_deserializer=predict_pb2.PredictResponse.FromString),
        }
        channel.close()
    finally:
        returncode, output = proc.stop()
    assert returncode == 0, output
    assert "Traceback" not in output, output
    assert "lmk-serve: stopping" in output


def good_image(seed=0):
    return np.random.default_rng(seed).random((12, 9, 1), np.float32)


def request_for(inputs, model="toy", version=None, label=None, signature=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    if signature is not None:
        request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(value if isinstance(value, tensor_pb2.TensorProto)
                                      else tf.make_tensor_proto(value))
    return request


def good_inputs(seed=0):
    return {"image": good_image(seed), "spacing": np.array([0.5, 0.25], np.float32)}


def assert_still_serving(server, seed=0):
    inputs = good_inputs(seed)
    response = server["predict"].Predict(request_for(inputs), timeout=30)
    got = tf.make_ndarray(response.outputs["landmarks_mm"])
    want = expected(inputs["image"][..., 0], inputs["spacing"])["landmarks_mm"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def shape_only_proto(dims, dtype=types_pb2.DT_FLOAT):
    """A TensorProto whose header claims `dims` but holds (almost) no content."""
    return tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]),
        tensor_content=b"\0" * 16,
    )


def with_nan(where):
    image = good_image()
    image[where] = np.nan
    return image


# name -> (request, status code, words the message must contain)
CASES = {
    "unknown_model": (lambda: request_for(good_inputs(), model="nope"),
                      "NOT_FOUND", "model 'nope' is not served"),
    "path_as_model_name": (lambda: request_for(good_inputs(), model="../toy/1"),
                           "NOT_FOUND", "model '../toy/1' is not served"),
    "unknown_version": (lambda: request_for(good_inputs(), version=7),
                        "NOT_FOUND", "version 7"),
    "unknown_label": (lambda: request_for(good_inputs(), label="canary"),
                      "NOT_FOUND", "no version label 'canary'"),
    "unknown_signature": (lambda: request_for(good_inputs(), signature="serving_other"),
                          "NOT_FOUND", "no signature 'serving_other'"),
    "missing_input": (lambda: request_for({"image": good_image()}),
                      "INVALID_ARGUMENT", "missing input 'spacing'"),
    "unknown_input": (lambda: request_for({**good_inputs(), "mask": good_image()}),
                      "INVALID_ARGUMENT", "unknown input 'mask'"),
    "float64_image": (lambda: request_for({**good_inputs(), "image": good_image().astype(np.float64)}),
                      "INVALID_ARGUMENT", "input 'image' must be float32, got float64"),
    "string_image": (lambda: request_for({**good_inputs(), "image": np.array([b"x"])}),
                     "INVALID_ARGUMENT", "input 'image' must be float32, got string"),
    "invalid_dtype_enum": (lambda: request_for({**good_inputs(), "image": shape_only_proto([4, 4, 1], 999)}),
                           "INVALID_ARGUMENT", "input 'image' must be float32"),
    "rank_2_image": (lambda: request_for({**good_inputs(), "image": good_image()[..., 0]}),
                     "INVALID_ARGUMENT", "input 'image' must have rank 3"),
    "two_channels": (lambda: request_for({**good_inputs(), "image": np.zeros((5, 5, 2), np.float32)}),
                     "INVALID_ARGUMENT", "input 'image' must have size 1 along axis 2"),
    "empty_image": (lambda: request_for({**good_inputs(), "image": np.zeros((0, 5, 1), np.float32)}),
                    "INVALID_ARGUMENT", "input 'image' must be at least 2 pixels"),
    "one_pixel_image": (lambda: request_for({**good_inputs(), "image": np.ones((1, 1, 1), np.float32)}),
                        "INVALID_ARGUMENT", "input 'image' must be at least 2 pixels"),
    "nan_pixel": (lambda: request_for({**good_inputs(), "image": with_nan((3, 4, 0))}),
                  "INVALID_ARGUMENT", "input 'image' has 1 non-finite values"),
    "inf_spacing": (lambda: request_for({**good_inputs(), "spacing": np.array([np.inf, 1], np.float32)}),
                    "INVALID_ARGUMENT", "input 'spacing' has 1 non-finite values"),
    "zero_spacing": (lambda: request_for({**good_inputs(), "spacing": np.array([0, 1], np.float32)}),
                     "INVALID_ARGUMENT", "input 'spacing' must be > 0"),
    "negative_spacing": (lambda: request_for({**good_inputs(), "spacing": np.array([-1, 1], np.float32)}),
                         "INVALID_ARGUMENT", "input 'spacing' must be > 0"),
    "3d_spacing_for_2d": (lambda: request_for({**good_inputs(), "spacing": np.ones(3, np.float32)}),
                          "INVALID_ARGUMENT", "input 'spacing' must have size 2"),
    "absurd_shape_in_header": (lambda: request_for({**good_inputs(),
                                                    "image": shape_only_proto([65536, 65536, 1])}),
                               "INVALID_ARGUMENT", "input 'image' has 4294967296 elements"),
    "over_element_limit": (lambda: request_for({**good_inputs(),
                                                "image": np.zeros((500, 500, 1), np.float32)}),
                           "INVALID_ARGUMENT", "limit of 200000 (--max_image_elements)"),
    "content_shorter_than_shape": (lambda: request_for({**good_inputs(),
                                                        "image": shape_only_proto([40, 40, 1])}),
                                   "INVALID_ARGUMENT", "input 'image': tensor content does not match"),
    "negative_dimension": (lambda: request_for({**good_inputs(), "image": shape_only_proto([-3, 4, 1])}),
                           "INVALID_ARGUMENT", "input 'image' has a negative dimension"),
    "graph_assertion": (lambda: request_for({**good_inputs(), "image": np.full((4, 4, 1), 2e6, np.float32)}),
                        "INVALID_ARGUMENT", "image maximum must be < 1e6, got [2e+06]"),
    "oversized_message": (lambda: request_for({**good_inputs(),
                                               "image": np.zeros((800, 800, 1), np.float32)}),
                          "RESOURCE_EXHAUSTED", "larger than max"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_request_gets_its_status_and_the_server_keeps_serving(case, server):
    make, code, words = CASES[case]
    with pytest.raises(grpc.RpcError) as info:
        server["predict"].Predict(make(), timeout=30)
    assert info.value.code().name == code, info.value.details()
    assert words in info.value.details()
    assert_still_serving(server)


@pytest.mark.slow
@pytest.mark.parametrize("data", [b"\xff" * 40, b"\x0a\x05toy", bytes(range(256))])
def test_bytes_that_are_no_predict_request_are_invalid_argument(data, server):
    with pytest.raises(grpc.RpcError) as info:
        server["raw"](data, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid tensorflow.serving.PredictRequest" in info.value.details()
    assert_still_serving(server)


@pytest.mark.slow
def test_metadata_of_unknown_field_and_model(server):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "toy"
    request.metadata_field.append("../../etc/passwd")
    with pytest.raises(grpc.RpcError) as info:
        server["predict"].GetModelMetadata(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "/etc"
    with pytest.raises(grpc.RpcError) as info:
        server["predict"].GetModelMetadata(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.slow
@pytest.mark.parametrize("where", ["outside", "relative", "url"])
def test_reload_config_cannot_point_outside_the_model_roots(where, server):
    path = {"outside": server["outside"], "relative": server["base"] + "/../../elsewhere/sneaky",
            "url": "gs://bucket/model"}[where]
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.add(name="toy", base_path=server["base"])
    request.config.model_config_list.config.add(name="sneaky", base_path=path)
    with pytest.raises(grpc.RpcError) as info:
        server["models"].HandleReloadConfigRequest(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model 'sneaky'" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:  # nothing was loaded from there
        server["predict"].Predict(request_for(good_inputs(), model="sneaky"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert_still_serving(server)


def rest_status(server, path, body: bytes | None, headers=None):
    request = urllib.request.Request(server["rest"] + path, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def oversized_status(server, length: int) -> int:
    """Announce a body over the limit and send none of it: the server must answer 413 from
    the headers alone. (Sending the body races the server closing the connection: the
    client can get a broken pipe before it reads the answer.)"""
    host, port = server["rest"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /v1/models/toy:predict HTTP/1.1\r\nHost: {host}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
                     .encode())
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1])


@pytest.mark.slow
def test_rest_hostile_requests(server):
    assert rest_status(server, "/v1/models/..%2F..%2Fetc:predict", b"{}")[0] == 404
    assert rest_status(server, "/v1/models/toy:predict", b"[1, 2]")[0] == 400
    assert rest_status(server, "/v1/models/toy:predict", b"{\"inputs\": {\"image\": "
                       b"[[[1e999]]], \"spacing\": [1, 1]}}")[0] == 400
    assert oversized_status(server, MAX_REQUEST_MB * 2**20 + 10) == 413
    assert_still_serving(server)


# ----- seeded fuzz: a few hundred corrupted requests, then a correct answer -----

ALLOWED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED"}


def fuzz_requests(seed: int, count: int):
    """Serialized requests: valid ones mutated structurally or byte by byte."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        shape = tuple(int(d) for d in rng.integers(1, 20, size=int(rng.integers(1, 5))))
        image = rng.normal(size=shape).astype(np.float32)
        spacing = rng.normal(1.0, 1.0, size=int(rng.integers(1, 4))).astype(np.float32)
        kind = i % 5
        if kind == 0:  # plausible shapes and values, some valid
            image = rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30)), 1), np.float32)
            if rng.random() < 0.3:
                image.flat[int(rng.integers(image.size))] = rng.choice([np.nan, np.inf, -np.inf])
            spacing = np.abs(spacing[:2]) if spacing.size >= 2 else spacing
        inputs = {"image": image, "spacing": spacing}
        if kind == 1 and rng.random() < 0.5:
            inputs[rng.choice(["mask", "", "image\0", "spacing "])] = spacing
        if kind == 1 and rng.random() < 0.5:
            del inputs[rng.choice(["image", "spacing"])]
        request = request_for(
            inputs,
            model=str(rng.choice(["toy", "toy", "toy", "Toy", "../toy", "", "toy\0"])),
            version=int(rng.choice([0, 1, 1, 2, -1, 2**62])) if rng.random() < 0.3 else None,
            signature=str(rng.choice(["", "serving_default", "model_info", "x"])),
        )
        if kind == 2:  # lie in the header
            proto = request.inputs["image"] if "image" in request.inputs else None
            if proto is not None:
                proto.dtype = int(rng.choice([0, 2, 3, 19, 23, 100, 1000]))
                if rng.random() < 0.5:
                    proto.tensor_shape.dim.add(size=int(rng.choice([-5, 0, 2**31, 2**40])))
        data = bytearray(request.SerializeToString())
        if kind in (3, 4) and data:  # corrupt the bytes
            for _ in range(int(rng.integers(1, 8))):
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
            if kind == 4:
                data = data[: int(rng.integers(len(data) + 1))]
        yield bytes(data)


@pytest.mark.slow
def test_fuzzed_requests_get_allowed_codes_then_a_correct_answer(server):
    codes = {}
    for data in fuzz_requests(seed=20240611, count=300):
        try:
            response = server["raw"](data, timeout=30)
            code = "OK"
            outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
            # A request the server answered is one it considered valid: the
            # contract's outputs, finite where they must be.
            assert set(outputs) == {"landmarks_index", "landmarks_mm", "confidence", "present"}
            assert np.isfinite(outputs["landmarks_mm"]).all()
        except grpc.RpcError as e:
            code = e.code().name
            assert code in ALLOWED, (code, e.details())
        codes[code] = codes.get(code, 0) + 1
    # The mix really exercised every path, not just one error.
    assert codes.get("OK", 0) >= 5 and codes.get("INVALID_ARGUMENT", 0) >= 50, codes
    assert codes.get("NOT_FOUND", 0) >= 5, codes
    for seed in range(3):
        assert_still_serving(server, seed)


# ----- the concurrency limit, in process and deterministic -----

class _BlockingManager:
    """Holds every request in `get` until released: the slots stay busy."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()

    def get(self, name, version=None, label=None):
        self.entered.set()
        self.release.wait(30)
        from lmk_tf.serving.validation import NotFound

        raise NotFound(f"model {name!r} is not served")


def test_requests_over_the_concurrency_limit_are_resource_exhausted():
    manager = _BlockingManager()
    grpc_server, port = create_server(manager, host="127.0.0.1", port=0, max_workers=4,
                                      max_concurrent_requests=1)
    grpc_server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
        first = stub.Predict.future(request_for(good_inputs()), timeout=30)
        assert manager.entered.wait(30)
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(request_for(good_inputs()), timeout=30)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        manager.release.set()
        with pytest.raises(grpc.RpcError) as info:
            first.result()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND  # the held one was answered
    finally:
        manager.release.set()
        channel.close()
        grpc_server.stop(grace=1).wait()


def _wait_until_taken(slots: threading.Semaphore, seconds: float = 30) -> bool:
    """True once a request holds the server's only slot (polled: the slot is the fact under test)."""
    deadline = time.monotonic() + seconds
    while slots._value and time.monotonic() < deadline:
        time.sleep(0.01)
    return slots._value == 0


def test_rest_requests_over_the_concurrency_limit_are_503():
    manager = _BlockingManager()
    rest = create_rest_server(manager, port=0, max_concurrent_requests=1)
    threading.Thread(target=rest.serve_forever, daemon=True).start()
    url, slots = f"http://127.0.0.1:{rest.server_address[1]}", rest.RequestHandlerClass.slots
    body = json.dumps({"inputs": {"image": good_image().tolist(), "spacing": [0.5, 0.25]}}).encode()
    try:
        # A request inside the model holds the only slot: the next one is refused, not queued.
        first = threading.Thread(target=rest_status, args=({"rest": url}, "/v1/models/toy:predict", body))
        first.start()
        assert manager.entered.wait(30), "the first request never reached the model"
        code, answer = rest_status({"rest": url}, "/v1/models/toy:predict", body)
        assert code == 503 and b"--max_concurrent_requests" in answer, (code, answer)
        manager.release.set()
        first.join(30)
        assert slots._value == 1  # released once answered

        # The slot is taken before the body is read, so a client that has sent half of
        # its body holds it too (bodies held in memory are bounded by the limit).
        with socket.create_connection(("127.0.0.1", rest.server_address[1]), timeout=30) as slow:
            slow.sendall(f"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
            assert _wait_until_taken(slots), "a half-sent request never took the slot"
            code, answer = rest_status({"rest": url}, "/v1/models/toy:predict", body)
            assert code == 503 and b"--max_concurrent_requests" in answer, (code, answer)
            slow.sendall(body[10:])
            reply = slow.makefile("rb").read()
        assert reply.split(b"\r\n", 1)[0].split()[1] == b"404", reply[:200]  # answered once whole
        assert rest_status({"rest": url}, "/v1/models/toy:predict", body)[0] == 404
    finally:
        manager.release.set()
        rest.shutdown()
        rest.server_close()


def test_in_process_server_allows_reload_paths_only_when_told(tmp_path, toy_export):  # noqa: F811
    base = str(tmp_path / "roots" / "toy")
    install_version(toy_export["2d"], base, 1)
    config = config_from_flags("toy", base)
    manager = ModelManager(config, file_system_poll_wait_seconds=0, warmup=False)
    manager.start()
    grpc_server, port = create_server(manager, port=0, model_roots=[str(tmp_path / "roots")])
    grpc_server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    try:
        request = model_management_pb2.ReloadConfigRequest()
        request.config.model_config_list.config.add(name="toy", base_path=base)
        request.config.model_config_list.config.add(name="twin", base_path=base)
        assert models.HandleReloadConfigRequest(request, timeout=30).status.error_code == 0
        assert manager.get("twin").version == 1
    finally:
        channel.close()
        grpc_server.stop(grace=1).wait()
        manager.stop()
