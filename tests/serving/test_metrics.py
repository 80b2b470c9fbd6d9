"""lmk-serve answers /monitoring/prometheus/metrics with TF Serving's series, counting what it served."""

import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

TFS_COUNT, TFS_LATENCY = ":tensorflow:serving:request_count", ":tensorflow:serving:request_latency"
LMK_COUNT, LMK_LATENCY = ":lmk:serving:request_count", ":lmk:serving:request_latency_seconds"


def scrape(server):
    """(families by name, {(sample name, sorted labels): value}) parsed by Prometheus' own parser."""
    with urllib.request.urlopen(server.rest_url + "/monitoring/prometheus/metrics", timeout=10) as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    return families, samples, text


def rest(server, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(server.rest_url + path, data=data), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def predict(stub, spacing, **spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    if "version" in spec:
        request.model_spec.version.value = spec["version"]
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(np.ones((6, 5, 1), np.float32)))
    request.inputs["spacing"].CopyFrom(tf.make_tensor_proto(np.asarray(spacing, np.float32)))
    try:
        stub.Predict(request, timeout=10)
        return "OK"
    except grpc.RpcError as e:
        return e.code().name


def test_counts_and_latencies_of_good_and_bad_requests_over_grpc_and_rest(toy_server):
    _, before, _ = scrape(toy_server)
    channel = grpc.insecure_channel(toy_server.address)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    assert [predict(stub, [1, 1]), predict(stub, [0.5, 2]), predict(stub, [0, 1]), predict(stub, [1, 1], version=9)] \
        == ["OK", "OK", "INVALID_ARGUMENT", "NOT_FOUND"]
    channel.close()
    image = np.ones((6, 5, 1)).tolist()
    assert rest(toy_server, "/v1/models/toy:predict", {"inputs": {"image": image, "spacing": [1, 1]}}) == 200
    assert rest(toy_server, "/v1/models/toy:predict", {"inputs": {"image": image}}) == 400
    assert rest(toy_server, "/v1/models/toy") == 200
    families, after, text = scrape(toy_server)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    # TF Serving's names and labels: one count per call by model and status code...
    assert delta(TFS_COUNT, model_name="toy", status="OK") == 2 + 2
    assert delta(TFS_COUNT, model_name="toy", status="INVALID_ARGUMENT") == 1 + 1
    assert delta(TFS_COUNT, model_name="toy", status="NOT_FOUND") == 1
    # ...and the latency of the answered ones, microseconds, by API and entry point.
    assert delta(TFS_LATENCY + "_count", model_name="toy", API="Predict", entrypoint="GRPC") == 2
    assert delta(TFS_LATENCY + "_count", model_name="toy", API="predict", entrypoint="REST") == 1
    assert delta(TFS_LATENCY + "_bucket", model_name="toy", API="Predict", entrypoint="GRPC", le="+Inf") == 2
    assert families[TFS_LATENCY].type == "histogram" and "# TYPE :tensorflow:serving:request_count untyped" in text
    assert '{API="Predict",entrypoint="GRPC",le="10.0",model_name="toy"}' in text  # TF Serving's first bucket
    # lmk-serve's own: by version and signature too.
    ok = dict(model_name="toy", version="1", signature="serving_default")
    assert delta(LMK_COUNT + "_total", **ok, entrypoint="GRPC", status="OK") == 2
    assert delta(LMK_COUNT + "_total", **ok, entrypoint="GRPC", status="INVALID_ARGUMENT") == 1
    assert delta(LMK_COUNT + "_total", model_name="toy", version="9", signature="serving_default",
                 entrypoint="GRPC", status="NOT_FOUND") == 1
    assert delta(LMK_COUNT + "_total", **ok, entrypoint="REST", status="OK") == 1
    assert delta(LMK_LATENCY + "_count", **ok, entrypoint="GRPC") == 2
    assert after[(LMK_LATENCY + "_sum", tuple(sorted({**ok, "entrypoint": "GRPC"}.items())))] > 0
    assert not any(name.endswith("_created") for name, _ in after)  # TF Serving has none


@pytest.mark.parametrize("path", ["/monitoring/prometheus/metricsx", "/monitoring/prometheus"])
def test_only_the_metrics_path_answers_metrics(toy_server, path):
    assert rest(toy_server, path) == 404
