"""Serving latency and throughput: in-process signature call vs gRPC via lmk-serve.

  .venv/bin/python benchmarks/serving.py                       # the toy model, 2D and 3D
  .venv/bin/python benchmarks/serving.py --model_dir=saved_models/demo --iterations=20

For a 512x512 2D image (or a 64^3 volume for a 3D model) it prints the median
and 90th-percentile latency of (a) the signature called in this process
(LocalModel, with the server's validation) and (b) a gRPC Predict round trip to
a fresh lmk-serve process on loopback, then requests per second with 1, 4 and 8
concurrent clients. The difference (b) - (a) is the price of serving:
serialisation, transport, and the server's validation and threading.
"""

import json
import os
import statistics
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, REPO)

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "SavedModel version or base dir; default: toy 2D and 3D models.")
flags.DEFINE_integer("iterations", 30, "Timed calls per latency figure.", lower_bound=1)
flags.DEFINE_float("seconds", 3.0, "Duration of each throughput run.", lower_bound=0.1)
flags.DEFINE_list("clients", ["1", "4", "8"], "Concurrent client counts for throughput.")
flags.DEFINE_integer("grpc_max_threads", 8, "Server threads.", lower_bound=1)


def percentiles(samples):
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(0.9 * (len(ordered) - 1))] * 1e3


def time_calls(fn, iterations):
    for _ in range(2):  # warm-up: tracing, first allocations
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def throughput(fn, clients, seconds):
    stop = time.monotonic() + seconds
    counts = [0] * clients

    def worker(i):
        while time.monotonic() < stop:
            fn()
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - start)


def bench_model(model_dir, work):
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from lmk_tf.serving.client import make_channel, make_stub
    from lmk_tf.serving.local import LocalModel
    from tests.serving.conftest import free_port
    from tests.serving.server_process import ServerProcess

    local = LocalModel(model_dir)
    ndim = local.served.signature().spec.inputs["spacing"].shape[0]
    shape = (512, 512) if ndim == 2 else (64, 64, 64)
    rng = np.random.default_rng(0)
    image = rng.random(shape, np.float32)[..., np.newaxis]
    spacing = np.full(ndim, 0.5, np.float32)
    inputs = {"image": image, "spacing": spacing}
    label = f"{'x'.join(map(str, shape))} ({local.path})"

    rows = [("in-process", *time_calls(lambda: local.predict(inputs), FLAGS.iterations))]

    # lmk-serve wants a base dir with integer versions: link the version dir in as 1.
    base = tempfile.mkdtemp(dir=work)
    os.symlink(os.path.abspath(local.path), os.path.join(base, "1"))
    port = free_port()
    server = ServerProcess(
        [f"--port={port}", "--rest_api_port=0", "--model_name=bench", f"--model_base_path={base}",
         f"--grpc_max_threads={FLAGS.grpc_max_threads}"],
        os.path.join(work, f"server_{port}.log"),
    )
    try:
        address = f"127.0.0.1:{port}"
        server.wait_available(address, ["bench"])
        stub = make_stub(make_channel(address))
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "bench"
        request.inputs["image"].CopyFrom(tf.make_tensor_proto(image))
        request.inputs["spacing"].CopyFrom(tf.make_tensor_proto(spacing))
        call = lambda: stub.Predict(request, timeout=60)  # noqa: E731
        rows.append(("gRPC lmk-serve", *time_calls(call, FLAGS.iterations)))
        rates = {int(c): throughput(call, int(c), FLAGS.seconds) for c in FLAGS.clients}
    finally:
        server.stop()
    local_rate = throughput(lambda: local.predict(inputs), 1, FLAGS.seconds)

    print(f"\n{label}, request {image.nbytes / 2**20:.1f} MiB")
    print(f"  {'path':<16}{'median ms':>10}{'p90 ms':>10}")
    for name, median, p90 in rows:
        print(f"  {name:<16}{median:>10.1f}{p90:>10.1f}")
    print(f"  throughput: in-process 1 caller {local_rate:.1f}/s; gRPC " +
          ", ".join(f"{c} client{'s' if c > 1 else ''} {r:.1f}/s" for c, r in rates.items()))
    return {"shape": list(shape), "latency_ms": {n: [m, p] for n, m, p in rows},
            "grpc_requests_per_s": rates, "in_process_requests_per_s": local_rate}


def main(argv):
    del argv
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # TF's export chatter is not a figure
    with tempfile.TemporaryDirectory() as work:
        if FLAGS.model_dir:
            models = [FLAGS.model_dir]
        else:
            from tests.serving.toy_model import export_toy_model

            models = [export_toy_model(os.path.join(work, "toy2d", "1"), ndim=2),
                      export_toy_model(os.path.join(work, "toy3d", "1"), ndim=3)]
        results = [bench_model(m, work) for m in models]
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
