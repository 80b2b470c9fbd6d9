"""serving_encoded and serving_batch through lmk-serve: the answers of serving_default, over gRPC and REST."""

import base64
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image as PILImage

from lmk_tf.io.model_input import encode_for_request, read_image_for_model
from lmk_tf.serving import client
from tests.serving.conftest import InProcessServer, rest_json
from tests.serving.toy_model import ToyLandmarks, expected

RNG = np.random.default_rng(5)
PICTURES = {"grey8.png": RNG.integers(0, 256, (24, 17), dtype=np.uint8),
            "grey16.png": RNG.integers(0, 65536, (24, 17), dtype=np.uint16),
            "photo.jpg": RNG.integers(0, 256, (24, 17), dtype=np.uint8)}


@pytest.fixture
def stub(toy_server):
    channel = client.make_channel(toy_server.address)
    yield client.make_stub(channel)
    channel.close()


def counts(server):
    """Requests answered OK so far, by signature, from the server's own metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(server.metrics.exposition().decode()):
        for s in family.samples:
            if s.name == ":lmk:serving:request_count_total" and s.labels["status"] == "OK":
                out[s.labels["signature"]] = out.get(s.labels["signature"], 0) + s.value
    return out


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_a_file_sent_as_it_is_gets_the_answer_of_its_pixels(toy_server, stub, tmp_path, name):
    path = str(tmp_path / name)
    PILImage.fromarray(PICTURES[name]).save(path, quality=70)
    image = read_image_for_model(path, spacing=(0.5, 0.25))
    encoded = encode_for_request(path, image)
    with open(path, "rb") as f:
        assert encoded == f.read()
    before = counts(toy_server)
    got = client.predict_image(stub, "toy", image, encoded=encoded, timeout=10)
    assert counts(toy_server).get("serving_encoded", 0) == before.get("serving_encoded", 0) + 1
    want = client.predict_image(stub, "toy", image, timeout=10)  # float32 tensor to serving_default
    for a, b in zip(got["landmarks"], want["landmarks"]):
        np.testing.assert_allclose(a["index"], b["index"], atol=0.01)
        assert a["present"] == b["present"] and a["confidence"] == pytest.approx(b["confidence"], abs=1e-6)
    # The toy computes its landmarks from the pixels: JPEG's are the ones Pillow decoded.
    np.testing.assert_allclose([lm["index"] for lm in got["landmarks"]],
                               expected(image.array, image.spacing)["landmarks_index"], atol=0.01)


def test_a_version_without_serving_encoded_is_sent_the_tensor(tmp_path):
    old = str(tmp_path / "old" / "1")
    module = ToyLandmarks(2, json.dumps({"landmark_names": ["a", "b", "c"]}))
    tf.saved_model.save(module, old, signatures={"serving_default": module.serve, "model_info": module.info})
    server = InProcessServer(os.path.dirname(old), name="old")
    try:
        pixels = RNG.integers(0, 256, (10, 12), dtype=np.uint8)
        PILImage.fromarray(pixels).save(tmp_path / "a.png")
        image = read_image_for_model(str(tmp_path / "a.png"), spacing=(1.0, 1.0))
        channel = client.make_channel(server.address)
        result = client.predict_image(client.make_stub(channel), "old", image, timeout=10,
                                      encoded=encode_for_request(str(tmp_path / "a.png"), image))
        channel.close()
        np.testing.assert_allclose(result["landmarks"][0]["index"], expected(pixels, (1, 1))["landmarks_index"][0],
                                   rtol=1e-5)
        assert counts(server) == {"model_info": 1, "serving_default": 1}
    finally:
        server.stop()


def rest_predict(server, body, model="toy"):
    return rest_json(server.rest_url, f"/v1/models/{model}:predict", body)


def test_rest_takes_binary_inputs_as_b64(toy_server):
    pixels = RNG.integers(0, 256, (9, 7), dtype=np.uint8)
    png = base64.b64encode(tf.io.encode_png(pixels[..., None]).numpy()).decode()
    code, body = rest_predict(toy_server, {"signature_name": "serving_encoded",
                                           "inputs": {"image_bytes": {"b64": png}, "spacing": [1.0, 2.0]}})
    assert code == 200, body
    np.testing.assert_allclose(body["outputs"]["landmarks_mm"], expected(pixels, (1, 2))["landmarks_mm"], rtol=1e-5)
    code, body = rest_predict(toy_server, {"signature_name": "serving_encoded",
                                           "inputs": {"image_bytes": {"b64": base64.b64encode(b"GIF89a").decode()},
                                                      "spacing": [1.0, 2.0]}})
    assert code == 400 and "must be a PNG or JPEG file" in body["error"]


def test_rest_stacks_instances_for_serving_batch_as_tf_serving_does(toy_server):
    images = [RNG.random((6, 5), np.float32) for _ in range(3)]
    spacings = [[1.0, 1.0], [0.5, 2.0], [2.0, 0.5]]
    instances = [{"image": im[..., None].tolist(), "spacing": sp} for im, sp in zip(images, spacings)]
    code, body = rest_predict(toy_server, {"signature_name": "serving_batch", "instances": instances})
    assert code == 200, body
    assert len(body["predictions"]) == 3
    for prediction, im, sp in zip(body["predictions"], images, spacings):
        np.testing.assert_allclose(prediction["landmarks_mm"], expected(im, sp)["landmarks_mm"], rtol=1e-5)
    code, body = rest_predict(toy_server, {"signature_name": "serving_batch", "inputs": {
        "image": [im[..., None].tolist() for im in images], "spacing": spacings}})
    assert code == 200 and np.asarray(body["outputs"]["landmarks_index"]).shape == (3, 3, 2)
    ragged = [instances[0], {"image": RNG.random((4, 4, 1)).tolist(), "spacing": [1, 1]}]
    code, body = rest_predict(toy_server, {"signature_name": "serving_batch", "instances": ragged})
    assert code == 400 and "input 'image'" in body["error"]
