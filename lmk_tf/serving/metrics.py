"""Prometheus metrics of one server, answered on its REST port at TF Serving's path.

TF Serving's series as its servables/tensorflow/util.cc defines them and its front ends record
them, so a dashboard reads either server: `:tensorflow:serving:request_count` {model_name, status}
for every Predict and REST call (untyped: a prometheus_client counter would add `_total`) and
`:tensorflow:serving:request_latency` {model_name, API, entrypoint}, microseconds, answered calls.
lmk-serve's own break them down by version and signature: `:lmk:serving:request_count_total`
(with status) and `:lmk:serving:request_latency_seconds`.
"""

import threading

import prometheus_client
from prometheus_client.core import UnknownMetricFamily

PATH = "/monitoring/prometheus/metrics"  # TF Serving's PrometheusExporter::kPrometheusPath
CONTENT_TYPE = prometheus_client.exposition.CONTENT_TYPE_PLAIN_0_0_4  # what every Prometheus reads
_TFS_BUCKETS = [float(f"{10 * 1.8**i:.6g}") for i in range(33)]


class Metrics:
    """Request counts and latencies; `record` is called once per request, from any thread."""

    def __init__(self):
        prometheus_client.disable_created_metrics()  # no `_created` series, as TF Serving
        self.registry = prometheus_client.CollectorRegistry(auto_describe=False)
        self._counts, self._lock = {}, threading.Lock()
        self.registry.register(self)
        self._latency = prometheus_client.Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"], buckets=_TFS_BUCKETS, registry=self.registry)
        by = ["model_name", "version", "signature", "entrypoint"]
        self._lmk_count = prometheus_client.Counter(
            ":lmk:serving:request_count", "Requests by model, version, signature and status code.",
            by + ["status"], registry=self.registry)
        self._lmk_latency = prometheus_client.Histogram(
            ":lmk:serving:request_latency_seconds", "Wall time of answered requests by model, version "
            "and signature.", by, buckets=[b / 1e6 for b in _TFS_BUCKETS[6:28]], registry=self.registry)

    def collect(self):
        family = UnknownMetricFamily(":tensorflow:serving:request_count", "The total number of requests.",
                                     labels=["model_name", "status"])
        with self._lock:
            for labels, count in sorted(self._counts.items()):
                family.add_metric(labels, count)
        yield family

    def record(self, model: str, api: str, entrypoint: str, status: str, seconds: float, *,
               version: int = 0, signature: str = "") -> None:
        """One request to `model` ended with `status` (a grpc.StatusCode name) after `seconds`."""
        with self._lock:
            self._counts[(model, status)] = self._counts.get((model, status), 0) + 1
        by = (model, str(version or ""), signature, entrypoint)
        self._lmk_count.labels(*by, status).inc()
        if status == "OK":
            self._latency.labels(model, api, entrypoint).observe(seconds * 1e6)
            self._lmk_latency.labels(*by).observe(seconds)

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)
