"""Load on lmk-serve: C concurrent clients x R requests on loopback.

  .venv/bin/python benchmarks/serve_load.py --model_dir=/tmp/saved_models/tiny
  .venv/bin/python benchmarks/serve_load.py --model_dir=saved_models/demo --clients=8 \
      --requests=50 --drop_version --check
  .venv/bin/python benchmarks/serve_load.py --model_dir=/tmp/saved_models/tiny --compare_batching --batch=4

The served version is copied into a fresh base directory, a `python -m
pipelines.serve` process is started on a free 127.0.0.1 port, and C threads,
each with its own gRPC channel (a separate client), send R Predict requests
each for one synthetic image. Printed: throughput, p50/p99 latency, errors by
status code, the server's resident memory (VmRSS) before and after, and the
same model's throughput in this process (LocalModel, same C threads, no
transport) as the baseline. With --drop_version a copy of the version is
dropped in as version+1 once --drop_at of the requests are done; the run then
reports which versions answered. With --check the exit code is 1 unless:
zero errors, RSS growth < --max_rss_growth_mb, throughput >= --min_ratio x
in-process, and (with --drop_version) the new version answered.

Batching: lmk-serve does not merge requests itself; with --batch=B every request is one
serving_batch call carrying B images (client-side batching, what a TF Serving batching
deployment would merge further), and throughput counts images. --compare_batching runs the
load twice, one image per serving_default request ("off") and B per serving_batch request
("on"), and prints both.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_concurrently(worker, clients: int) -> float:
    """Runs `worker` in `clients` threads at once; returns the wall seconds."""
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def percentile(samples, q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def test_image(ndim: int, size: int, seed: int = 0):
    """A synthetic landmark image (float32, no channel axis) and its spacing."""
    from lmk_tf.synthetic import make_sample

    image, _, _ = make_sample(ndim, seed, shape=(size,) * ndim)
    import numpy as np

    return np.asarray(image.array, np.float32), np.asarray(image.spacing, np.float32)


def _install_copy(version_dir: str, base: str, version: int) -> str:
    """Copy aside, then rename: the server never sees a half-copied version."""
    staging = os.path.join(base, f".{version}.partial")
    shutil.copytree(version_dir, staging)
    target = os.path.join(base, str(version))
    os.rename(staging, target)
    return target


def in_process_throughput(version_dir: str, array, spacing, clients: int, requests: int) -> float:
    """Requests per second of the signature called in this process by `clients` threads."""
    import numpy as np

    from lmk_tf.serving.local import LocalModel

    model = LocalModel(version_dir)
    inputs = {"image": array[..., np.newaxis], "spacing": spacing}
    for _ in range(3):
        model.predict(inputs)

    def worker():
        for _ in range(requests):
            model.predict(inputs)

    return clients * requests / run_concurrently(worker, clients)


def run_load(
    model_dir: str,
    *,
    clients: int = 8,
    requests: int = 50,
    image_size: int = 64,
    drop_version: bool = False,
    drop_at: float = 0.05,
    grpc_max_threads: int = 8,
    baseline: bool = True,
    timeout: float = 60.0,
    work_dir: str | None = None,
    batch: int = 0,
    log=print,
) -> dict:
    """Run the load test; returns the figures as a dict (see module docstring). `batch` > 0:
    each request is a serving_batch call with that many images."""
    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from lmk_tf.export.contract import read_model_info
    from lmk_tf.serving import servable
    from lmk_tf.serving.client import make_channel, make_stub
    from tests.serving.server_process import ServerProcess

    version_dir, version = servable.resolve_model_dir(model_dir)
    info = read_model_info(version_dir)
    ndim = int(info.get("ndim", 2))
    array, spacing = test_image(ndim, image_size)

    own_tmp = work_dir is None
    work = work_dir or tempfile.mkdtemp(prefix="serve_load_")
    base = os.path.join(work, "model")
    os.makedirs(base, exist_ok=True)
    _install_copy(version_dir, base, max(version, 1))
    first_version = max(version, 1)
    port = free_port()
    server = ServerProcess(
        [f"--port={port}", "--rest_api_port=0", "--model_name=load", f"--model_base_path={base}",
         "--file_system_poll_wait_seconds=0.25", f"--grpc_max_threads={grpc_max_threads}"],
        os.path.join(work, "server.log"),
    )
    address = f"127.0.0.1:{port}"
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "load"
    images, spacings = array[..., np.newaxis], spacing
    if batch:
        request.model_spec.signature_name = "serving_batch"
        images, spacings = np.stack([images] * batch), np.stack([spacing] * batch)
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(images))
    request.inputs["spacing"].CopyFrom(tf.make_tensor_proto(spacings))
    try:
        server.wait_available(address, ["load"], timeout=120)
        warm = make_stub(make_channel(address))
        for _ in range(3):
            warm.Predict(request, timeout=timeout)
        rss_before = rss_mb(server.proc.pid)

        latencies, errors, versions = [], {}, {}
        lock = threading.Lock()
        done = [0]
        total = clients * requests
        dropped = {}

        def worker():
            channel = make_channel(address)
            stub = make_stub(channel)
            for _ in range(requests):
                start = time.perf_counter()
                try:
                    response = stub.Predict(request, timeout=timeout)
                    elapsed = time.perf_counter() - start
                    got = response.model_spec.version.value
                    ok = set(response.outputs) >= {"landmarks_index", "landmarks_mm", "confidence",
                                                   "present"}
                    with lock:
                        latencies.append(elapsed)
                        versions[got] = versions.get(got, 0) + 1
                        if not ok:
                            errors["BAD_RESPONSE"] = errors.get("BAD_RESPONSE", 0) + 1
                except grpc.RpcError as e:
                    with lock:
                        errors[e.code().name] = errors.get(e.code().name, 0) + 1
                with lock:
                    done[0] += 1
                    drop_now = drop_version and not dropped and done[0] >= max(1, int(total * drop_at))
                    if drop_now:
                        dropped["at"] = done[0]
                if drop_now:  # this client copies; the others keep sending meanwhile
                    _install_copy(version_dir, base, first_version + 1)
            channel.close()

        wall = run_concurrently(worker, clients)
        rss_after = rss_mb(server.proc.pid)
    finally:
        returncode, output = server.stop()
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "clients": clients,
        "requests_per_client": requests,
        "images_per_request": max(batch, 1),
        "signature": "serving_batch" if batch else "serving_default",
        "image_shape": list(array.shape),
        "ok": len(latencies),
        "errors": errors,
        "error_count": sum(errors.values()),
        "throughput_rps": total / wall,
        "images_per_s": total * max(batch, 1) / wall,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "mean_ms": statistics.fmean(latencies) * 1e3 if latencies else float("nan"),
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "rss_growth_mb": rss_after - rss_before,
        "versions_answered": {str(k): v for k, v in sorted(versions.items())},
        "dropped_version": first_version + 1 if drop_version else None,
        "dropped_after_requests": dropped.get("at"),
        "server_exit_code": returncode,
    }
    if baseline:
        result["in_process_rps"] = in_process_throughput(version_dir, array, spacing, clients, requests)
        result["ratio_to_in_process"] = result["images_per_s"] / result["in_process_rps"]
    result["server_output_tail"] = output[-2000:]
    return result


def report(result: dict) -> str:
    lines = [
        f"clients x requests   {result['clients']} x {result['requests_per_client']} "
        f"(image {result['image_shape']}, {result['images_per_request']} per {result['signature']} request)",
        f"throughput           {result['throughput_rps']:.1f} req/s, {result['images_per_s']:.1f} images/s",
        f"latency              p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms",
        f"errors               {result['error_count']} {result['errors'] or ''}".rstrip(),
        f"server RSS           {result['rss_before_mb']:.0f} MB before, "
        f"{result['rss_after_mb']:.0f} MB after ({result['rss_growth_mb']:+.0f} MB)",
    ]
    if "in_process_rps" in result:
        lines.append(f"in-process           {result['in_process_rps']:.1f} req/s "
                     f"(served/in-process = {result['ratio_to_in_process']:.2f})")
    if result["dropped_version"] is not None:
        lines.append(f"hot swap             version {result['dropped_version']} dropped after "
                     f"{result['dropped_after_requests']} requests; answers by version "
                     f"{result['versions_answered']}")
    return "\n".join(lines)


def failures(result: dict, *, max_rss_growth_mb: float, min_ratio: float) -> list[str]:
    problems = []
    if result["error_count"]:
        problems.append(f"{result['error_count']} failed requests: {result['errors']}")
    if result["rss_growth_mb"] >= max_rss_growth_mb:
        problems.append(f"RSS grew {result['rss_growth_mb']:.0f} MB (limit {max_rss_growth_mb})")
    if "ratio_to_in_process" in result and result["ratio_to_in_process"] < min_ratio:
        problems.append(f"throughput is {result['ratio_to_in_process']:.2f} of in-process "
                        f"(target {min_ratio})")
    if result["dropped_version"] is not None and not result["versions_answered"].get(
            str(result["dropped_version"])):
        problems.append(f"dropped-in version {result['dropped_version']} never answered")
    return problems


def main(argv):
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    settings = dict(clients=FLAGS.clients, requests=FLAGS.requests, image_size=FLAGS.image_size,
                    drop_version=FLAGS.drop_version, drop_at=FLAGS.drop_at,
                    grpc_max_threads=FLAGS.grpc_max_threads, baseline=FLAGS.baseline)
    if FLAGS.compare_batching:
        batch = max(FLAGS.batch, 2)
        off = run_load(FLAGS.model_dir, **settings)
        on = run_load(FLAGS.model_dir, **{**settings, "requests": max(1, FLAGS.requests // batch),
                                          "baseline": False}, batch=batch)
        for name, r in (("batching off", off), ("batching on", on)):
            print(f"--- {name}\n{report(r)}")
        print(f"on/off: {on['images_per_s'] / off['images_per_s']:.2f} x the images per second; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(json.dumps({n: {k: v for k, v in r.items() if k != "server_output_tail"}
                          for n, r in (("off", off), ("on", on))}))
        problems = failures(off, max_rss_growth_mb=FLAGS.max_rss_growth_mb, min_ratio=0) + failures(
            on, max_rss_growth_mb=FLAGS.max_rss_growth_mb, min_ratio=0)
        if FLAGS.check and problems:
            sys.exit(1)
        return
    result = run_load(FLAGS.model_dir, **settings, batch=FLAGS.batch)
    print(report(result))
    print(json.dumps({k: v for k, v in result.items() if k != "server_output_tail"}))
    problems = failures(result, max_rss_growth_mb=FLAGS.max_rss_growth_mb, min_ratio=FLAGS.min_ratio)
    for p in problems:
        print(f"FAIL: {p}")
    if FLAGS.check and problems:
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import app, flags

    flags.DEFINE_string("model_dir", None, "SavedModel version dir or base dir (highest version).")
    flags.DEFINE_integer("clients", 8, "Concurrent clients (each its own channel).", lower_bound=1)
    flags.DEFINE_integer("requests", 50, "Requests per client.", lower_bound=1)
    flags.DEFINE_integer("image_size", 64, "Pixels per axis of the synthetic test image.",
                         lower_bound=2)
    flags.DEFINE_bool("drop_version", False, "Drop in version+1 during the run (see --drop_at).")
    flags.DEFINE_float("drop_at", 0.05, "Fraction of the requests done when the version is dropped.",
                       lower_bound=0, upper_bound=1)
    flags.DEFINE_integer("grpc_max_threads", 8, "Server threads.", lower_bound=1)
    flags.DEFINE_bool("baseline", True, "Also measure in-process throughput.")
    flags.DEFINE_integer("batch", 0, "Images per request, sent to serving_batch; 0: one per serving_default "
                         "request.", lower_bound=0)
    flags.DEFINE_bool("compare_batching", False, "Run with one image per request, then --batch (at least 2) "
                      "per serving_batch request, the same number of images in all; print both.")
    flags.DEFINE_bool("check", False, "Exit 1 unless the targets are met.")
    flags.DEFINE_float("max_rss_growth_mb", 300.0, "Target: server RSS growth below this.")
    flags.DEFINE_float("min_ratio", 0.8, "Target: served/in-process throughput at least this.")
    flags.mark_flag_as_required("model_dir")
    app.run(main)
