"""The real lmk-serve process answers TF Serving's gRPC and REST APIs.

One server per module (a fresh process started with `python -m pipelines.serve`),
talked to with the stock tensorflow-serving-api stubs over loopback.
"""

import base64
import io
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image as PILImage
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from lmk_tf.image import Image
from lmk_tf.io import answers
from lmk_tf.serving import client
from lmk_tf.serving.local import LocalModel
from tests.serving.conftest import free_port, install_version, rest_json
from tests.serving.server_process import ServerProcess
from tests.serving.toy_model import NAMES, expected

MAX_REQUEST_MB = 16
MAX_ELEMENTS = 1_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory, toy_export):
    root = tmp_path_factory.mktemp("served")
    bases = {name: str(root / name) for name in ("toy", "toy3d", "hot", "extra")}
    install_version(toy_export["2d"], bases["toy"], 1)
    install_version(toy_export["3d"], bases["toy3d"], 1)
    install_version(toy_export["2d"], bases["hot"], 1)
    install_version(toy_export["2d"], bases["extra"], 1)
    config = root / "models.config"
    config.write_text(
        "model_config_list {\n"
        f'  config {{ name: "toy" base_path: "{bases["toy"]}" model_platform: "tensorflow"\n'
        '    model_version_policy { all {} }\n'
        '    version_labels { key: "stable" value: 1 } }\n'
        f'  config {{ name: "toy3d" base_path: "{bases["toy3d"]}" }}\n'
        f'  config {{ name: "hot" base_path: "{bases["hot"]}" }}\n'
        "}\n"
    )
    grpc_port, rest_port = free_port(), free_port()
    proc = ServerProcess(
        [f"--port={grpc_port}", f"--rest_api_port={rest_port}", f"--model_config_file={config}",
         "--file_system_poll_wait_seconds=0.2", "--model_config_file_poll_wait_seconds=1",
         "--grpc_max_threads=8",
         f"--max_request_mb={MAX_REQUEST_MB}", f"--max_image_elements={MAX_ELEMENTS}"],
        str(root / "server.log"),
    )
    address = f"127.0.0.1:{grpc_port}"
    try:
        proc.wait_available(address, ["toy", "toy3d", "hot"])
        channel = client.make_channel(address)
        yield {
            "proc": proc, "address": address, "rest": f"http://127.0.0.1:{rest_port}",
            "bases": bases, "channel": channel, "config": config,
            "predict": prediction_service_pb2_grpc.PredictionServiceStub(channel),
            "models": model_service_pb2_grpc.ModelServiceStub(channel),
            "toy_export": toy_export,
        }
        channel.close()
    finally:
        returncode, output = proc.stop()
    # A clean stop on SIGTERM, after announcing each model.
    assert returncode == 0, output
    assert f"model 'toy' version 1 is AVAILABLE on gRPC {address}" in output
    assert "lmk-serve: stopping" in output


def image_2d(h=12, w=9, seed=0):
    return np.random.default_rng(seed).random((h, w), np.float32)


def request_for(image, spacing, model="toy", **spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    if image is not None:
        request.inputs["image"].CopyFrom(tf.make_tensor_proto(image))
    if spacing is not None:
        request.inputs["spacing"].CopyFrom(tf.make_tensor_proto(spacing))
    return request


def outputs_of(response):
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def test_status_is_available(server):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "toy"
    response = server["models"].GetModelStatus(request, timeout=10)
    (status,) = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0 and status.status.error_message == ""


def test_metadata_lists_the_contract(server):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "toy"
    request.metadata_field.append("signature_def")
    response = server["predict"].GetModelMetadata(request, timeout=10)
    assert response.model_spec.name == "toy" and response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    sig = signature_map.signature_def["serving_default"]
    assert sig.method_name == "tensorflow/serving/predict"
    assert set(sig.inputs) == {"image", "spacing"}
    assert [d.size for d in sig.inputs["image"].tensor_shape.dim] == [-1, -1, 1]
    assert [d.size for d in sig.inputs["spacing"].tensor_shape.dim] == [2]
    assert sig.inputs["image"].dtype == tf.float32.as_datatype_enum
    assert set(sig.outputs) == {"landmarks_index", "landmarks_mm", "confidence", "present"}
    assert sig.outputs["present"].dtype == tf.bool.as_datatype_enum
    assert [d.size for d in sig.outputs["landmarks_index"].tensor_shape.dim] == [3, 2]


def test_predict_equals_in_process_results(server):
    image, spacing = image_2d(), np.array([0.5, 0.25], np.float32)
    response = server["predict"].Predict(request_for(image[..., None], spacing), timeout=10)
    assert response.model_spec.name == "toy"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    got = outputs_of(response)
    local = LocalModel(server["toy_export"]["2d"]).predict({"image": image[..., None], "spacing": spacing})
    assert set(got) == set(local)
    for name in local:
        np.testing.assert_array_equal(got[name], local[name])
    want = expected(image, spacing)
    np.testing.assert_allclose(got["landmarks_index"], want["landmarks_index"], rtol=1e-5)


def test_predict_3d_by_version_and_label(server):
    volume = np.random.default_rng(1).random((5, 6, 7), np.float32)
    spacing = np.array([2.0, 1.0, 0.5], np.float32)
    got = outputs_of(server["predict"].Predict(
        request_for(volume[..., None], spacing, "toy3d", version=1), timeout=10))
    np.testing.assert_allclose(got["landmarks_mm"], expected(volume, spacing)["landmarks_mm"], rtol=1e-5)
    by_label = server["predict"].Predict(
        request_for(image_2d()[..., None], np.ones(2, np.float32), version_label="stable"), timeout=10)
    assert by_label.model_spec.version.value == 1


def test_client_predict_image_adds_names_and_world_coordinates(server):
    image = Image(image_2d(8, 10), spacing=(0.5, 2.0), origin=(10.0, -5.0),
                  direction=np.array([[0.0, 1.0], [1.0, 0.0]]))
    result = client.predict_image(server["predict"], "toy", image, timeout=10)
    assert result["model"] == {"name": "toy", "version": 1}
    assert [lm["name"] for lm in result["landmarks"]] == NAMES
    want = expected(image.array, image.spacing)
    for lm, index in zip(result["landmarks"], want["landmarks_index"]):
        np.testing.assert_allclose(lm["index"], index, rtol=1e-5)
        np.testing.assert_allclose(lm["world"], image.index_to_world(index), rtol=1e-5)
    centre = result["landmarks"][2]
    # Centre (3.5, 4.5) px -> (1.75, 9.0) mm along (row, col) -> world x = 10 + 9, y = -5 + 1.75.
    np.testing.assert_allclose(centre["world"], [19.0, -3.25])
    csv_text = answers.format_text({"file": "a.png", **result}, "csv")
    assert csv_text.splitlines()[0] == ("file,landmark,present,confidence,index_row,index_col,"
                                        "mm_row,mm_col,world_x,world_y,expected_error_mm,radius90_mm,review")
    assert csv_text.splitlines()[3].startswith("a.png,centre,1,0.5,3.5,4.5,1.75,9,19,-3.25")


def bad_cases():
    img, sp = image_2d()[..., None], np.array([1.0, 1.0], np.float32)
    nan = img.copy()
    nan[1, 2, 0] = np.nan
    ok = grpc.StatusCode.INVALID_ARGUMENT
    missing = grpc.StatusCode.NOT_FOUND
    return [
        ("wrong rank", request_for(img[..., 0], sp), ok, "input 'image' must have rank 3"),
        ("wrong dtype", request_for(img.astype(np.float64), sp), ok,
         "input 'image' must be float32, got float64"),
        ("nan", request_for(nan, sp), ok, "input 'image' has 1 non-finite values"),
        ("zero spacing", request_for(img, np.array([0.0, 0.1], np.float32)), ok,
         "input 'spacing' must be > 0, got [0 0.1]"),
        ("3 spacings", request_for(img, np.ones(3, np.float32)), ok, "input 'spacing' must have size 2"),
        ("missing input", request_for(img, None), ok, "missing input 'spacing'"),
        ("too many pixels", request_for(np.ones((1001, 1000, 1), np.float32), sp), ok,
         f"more than the server's limit of {MAX_ELEMENTS}"),
        ("tf assertion", request_for(img * 1e7, sp), ok, "image maximum must be < 1e6"),
        ("unknown model", request_for(img, sp, "nope"), missing, "model 'nope' is not served"),
        ("unknown version", request_for(img, sp, version=42), missing, "model 'toy' version 42 is not AVAILABLE"),
        ("unknown label", request_for(img, sp, version_label="beta"), missing, "no version label 'beta'"),
        ("unknown signature", request_for(img, sp, signature_name="classify"), missing,
         "has no signature 'classify'"),
    ]


@pytest.mark.parametrize("case", bad_cases(), ids=lambda c: c[0])
def test_bad_requests_get_a_status_naming_the_problem(server, case):
    _, request, code, message = case
    with pytest.raises(grpc.RpcError) as info:
        server["predict"].Predict(request, timeout=10)
    assert info.value.code() == code
    assert message in info.value.details()
    # ...and the server still answers correctly afterwards.
    image, spacing = image_2d(seed=3), np.array([1.0, 2.0], np.float32)
    got = outputs_of(server["predict"].Predict(request_for(image[..., None], spacing), timeout=10))
    np.testing.assert_allclose(got["landmarks_mm"], expected(image, spacing)["landmarks_mm"], rtol=1e-5)


def test_classify_regress_and_multi_inference_are_unimplemented(server):
    for method, request in [("Classify", classification_pb2.ClassificationRequest()),
                            ("Regress", regression_pb2.RegressionRequest()),
                            ("MultiInference", inference_pb2.MultiInferenceRequest())]:
        with pytest.raises(grpc.RpcError) as info:
            getattr(server["predict"], method)(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED, method


def test_too_large_message_is_resource_exhausted(server):
    big = np.zeros((MAX_REQUEST_MB * 2**18 + 1024, 1, 1), np.float32)  # > MAX_REQUEST_MB MiB
    with pytest.raises(grpc.RpcError) as info:
        server["predict"].Predict(request_for(big, np.ones(2, np.float32)), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_concurrent_requests_are_all_answered_correctly(server):
    images = [image_2d(20 + i, 15, seed=i) for i in range(16)]
    spacing = np.array([0.3, 0.7], np.float32)

    def one(image):
        return outputs_of(server["predict"].Predict(request_for(image[..., None], spacing), timeout=30))

    with futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, images))
    for image, got in zip(images, results):
        np.testing.assert_allclose(got["landmarks_index"], expected(image, spacing)["landmarks_index"],
                                   rtol=1e-5)


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def statuses(server, name):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    response = server["models"].GetModelStatus(request, timeout=10)
    names = get_model_status_pb2.ModelVersionStatus.State.Name
    return {s.version: names(s.state) for s in response.model_version_status}


def test_new_version_is_picked_up_and_removed_one_unloaded(server):
    base = server["bases"]["hot"]
    install_version(server["toy_export"]["2d"], base, 2)
    wait_for(lambda: statuses(server, "hot") == {2: "AVAILABLE", 1: "END"})
    response = server["predict"].Predict(
        request_for(image_2d()[..., None], np.ones(2, np.float32), "hot"), timeout=10)
    assert response.model_spec.version.value == 2
    shutil.rmtree(os.path.join(base, "2"))
    # Version 1 is still on disk and now the latest again.
    wait_for(lambda: statuses(server, "hot").get(1) == "AVAILABLE")
    assert statuses(server, "hot")[2] == "END"


def test_changed_config_file_is_polled_and_its_new_model_served(server):
    config = server["config"]
    before = config.read_text()
    polled = os.path.join(os.path.dirname(server["bases"]["extra"]), "polled")
    install_version(server["toy_export"]["3d"], polled, 4)
    config.write_text(before.replace("}\n}\n", f'}}\n  config {{ name: "polled" base_path: "{polled}" }}\n}}\n'))
    try:
        # Polled every second, then loaded: a few seconds, bounded.
        wait_for(lambda: "model 'polled' version 4 is AVAILABLE" in server["proc"].output(), timeout=60)
        assert statuses(server, "polled") == {4: "AVAILABLE"}
        volume = np.ones((3, 4, 5, 1), np.float32)
        response = server["predict"].Predict(request_for(volume, np.ones(3, np.float32), "polled"), timeout=10)
        assert response.model_spec.version.value == 4
    finally:
        config.write_text(before)
    wait_for(lambda: "model 'polled' version 4 unloaded (model removed from config)" in server["proc"].output())


def test_reload_config_request_adds_a_model(server):
    request = model_management_pb2.ReloadConfigRequest()
    for name in ("toy", "toy3d", "hot", "extra"):
        model = request.config.model_config_list.config.add()
        model.name, model.base_path = name, server["bases"][name]
    request.config.model_config_list.config[0].model_version_policy.all.SetInParent()
    request.config.model_config_list.config[0].version_labels["stable"] = 1
    response = server["models"].HandleReloadConfigRequest(request, timeout=60)
    assert response.status.error_code == 0
    assert statuses(server, "extra") == {1: "AVAILABLE"}
    bad = model_management_pb2.ReloadConfigRequest()
    bad.config.model_config_list.config.add(name="nobase")
    with pytest.raises(grpc.RpcError) as info:
        server["models"].HandleReloadConfigRequest(bad, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model 'nobase' has no base_path" in info.value.details()


# ----- REST, same process -----

def rest(server, path, body=None):
    return rest_json(server["rest"], path, body)


def test_rest_status_is_tf_servings_json(server):
    assert rest(server, "/v1/models/toy") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]})
    assert rest(server, "/v1/models/toy/versions/1")[0] == 200
    assert rest(server, "/v1/models/toy/labels/stable")[1]["model_version_status"][0]["version"] == "1"
    code, body = rest(server, "/v1/models/nope")
    assert code == 404 and "model 'nope' is not served" in body["error"]


def test_rest_metadata(server):
    code, body = rest(server, "/v1/models/toy/metadata")
    assert code == 200
    assert body["model_spec"] == {"name": "toy", "signature_name": "", "version": "1"}
    sig = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["image"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["inputs"]["image"]["tensor_shape"]["dim"]] == ["-1", "-1", "1"]


def test_rest_predict_columnar_and_row_formats(server):
    image, spacing = image_2d(6, 5), [0.5, 2.0]
    want = expected(image, spacing)
    code, body = rest(server, "/v1/models/toy:predict",
                      {"inputs": {"image": image[..., None].tolist(), "spacing": spacing}})
    assert code == 200
    np.testing.assert_allclose(body["outputs"]["landmarks_mm"], want["landmarks_mm"], rtol=1e-5)
    assert body["outputs"]["present"] == want["present"].tolist()
    code, body = rest(server, "/v1/models/toy/versions/1:predict",
                      {"instances": [{"image": image[..., None].tolist(), "spacing": spacing}] * 2})
    assert code == 200 and len(body["predictions"]) == 2
    np.testing.assert_allclose(body["predictions"][1]["landmarks_index"], want["landmarks_index"], rtol=1e-5)


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        ("/v1/models/toy:predict", {"inputs": {"image": [[[1.0], [2.0]], [[3.0], [4.0]]],
                                               "spacing": [0, 1]}}, 400, "input 'spacing' must be > 0"),
        ("/v1/models/toy:predict", {"inputs": {"image": [[1.0, 2.0]], "spacing": [1, 1]}}, 400,
         "input 'image' must have rank 3"),
        ("/v1/models/toy:predict", {"inputs": {"image": [[[1.0], [2.0]], [[3.0], [4.0]]]}}, 400,
         "missing input 'spacing'"),
        ("/v1/models/toy:predict", {"nothing": 1}, 400, "exactly one of 'instances' or 'inputs'"),
        ("/v1/models/toy/versions/9:predict", {"inputs": {}}, 404, "version 9 is not AVAILABLE"),
        ("/v1/models/toy:predict", {"signature_name": "x", "inputs": {}}, 404, "no signature 'x'"),
    ],
)
def test_rest_errors(server, path, body, status, message):
    code, answer = rest(server, path, body)
    assert code == status and message in answer["error"]


def test_rest_string_outputs_are_tf_servings_json(server):
    code, body = rest(server, "/v1/models/toy:predict", {"signature_name": "model_info", "inputs": {}})
    assert code == 200, body
    assert isinstance(body["outputs"], str) and json.loads(body["outputs"])["landmark_names"] == NAMES
    code, body = rest(server, "/v1/models/toy:predict", {"signature_name": "model_info", "instances": [{}]})
    assert code == 200 and json.loads(body["predictions"][0])["landmark_names"] == NAMES
    # Names ending in _bytes are base64 objects; other strings are JSON strings.
    image = image_2d(6, 5)[..., None]
    code, body = rest(server, "/v1/models/toy:predict", {"signature_name": "encode", "inputs": image.tolist()})
    assert code == 200 and body["outputs"]["format"] == "png", body
    png = base64.b64decode(body["outputs"]["png_bytes"]["b64"])
    np.testing.assert_array_equal(np.asarray(PILImage.open(io.BytesIO(png))),
                                  (np.clip(image[..., 0], 0, 1) * 255).astype(np.uint8))


def test_rest_rejects_broken_json(server):
    request = urllib.request.Request(server["rest"] + "/v1/models/toy:predict", data=b"{not json")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 400 and "JSON Parse error" in json.loads(info.value.read())["error"]
