"""What serving costs on top of the model: in-process and through lmk-serve, one run, full size.

  .venv/bin/python benchmarks/serving.py --image=../shared/data/isbi2015/images/001.jpg
  .venv/bin/python benchmarks/serving.py --model_dir=saved_models/demo --image=a.png --spacing=0.1

For one image file (default: the first ISBI 2015 cephalogram, 1935 x 2400, a 0.3 MB JPEG)
and one model (default: saved_models/isbi2015_ceph) it prints the median and 90th-percentile
latency of

  in-process, pixels      LocalModel.predict on the float32 pixels already in memory
  in-process, file        read the file + predict (what lmk-predict does per file)
  lmk-serve, tensor       gRPC Predict of the float32 pixels to serving_default
  lmk-serve, file bytes   the file's bytes to serving_encoded, bytes already read
  lmk-client, file        read the file (geometry) + its bytes to serving_encoded + answer
                          shaped (what lmk-client does per file)

and the overheads that matter: lmk-client vs in-process from the file, and the served file
bytes vs the in-process pixels. lmk-serve runs in a fresh process on loopback. A model
exported before serving_encoded (isbi2015_ceph version 2) is first given the signature by
lmk_tf.export.rewrap (its loaded serving_default wrapped, the graph unchanged) in a
temporary directory; the output says so.
"""

import json
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, REPO)

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", os.path.join(REPO, "saved_models", "isbi2015_ceph"),
                    "SavedModel version or base dir.")
flags.DEFINE_string("image", os.path.join(REPO, "..", "shared", "data", "isbi2015", "images", "001.jpg"),
                    "Image file to send (PNG/JPEG go as they are; others as a lossless PNG).")
flags.DEFINE_list("spacing", ["0.1"], "mm per pixel of --image.")
flags.DEFINE_integer("iterations", 15, "Timed calls per row.", lower_bound=1)


def percentiles(samples):
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(0.9 * (len(ordered) - 1))] * 1e3


def time_calls(fn, iterations):
    for _ in range(2):  # warm-up: first allocations, first call of a signature
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def with_encoded_signature(model_dir, work):
    """(LocalModel with serving_encoded, note): the model's own version, or a rewrapped copy."""
    from lmk_tf.export import contract
    from lmk_tf.export.rewrap import add_signatures
    from lmk_tf.serving.local import LocalModel

    local = LocalModel(model_dir)
    if contract.ENCODED_SIGNATURE in local.served.signatures:
        return local, f"{local.path} (has serving_encoded)"
    target = add_signatures(local.path, os.path.join(work, "rewrapped", str(max(local.version, 1))))
    return LocalModel(target), (f"{local.path} lacks serving_encoded: rewrapped into a temporary copy "
                                "(lmk_tf.export.rewrap; its serving_default graph unchanged)")


def main(argv):
    del argv
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    import numpy as np

    from lmk_tf.io.model_input import encode_for_request, parse_spacing, read_image_for_model
    from lmk_tf.serving import client
    from tests.serving.conftest import free_port
    from tests.serving.server_process import ServerProcess

    spacing = parse_spacing(FLAGS.spacing)
    image = read_image_for_model(FLAGS.image, spacing)
    spacing = image.spacing
    encoded = encode_for_request(FLAGS.image, image)
    pixels = np.asarray(image.array, np.float32)[..., np.newaxis]
    with tempfile.TemporaryDirectory() as work:
        local, note = with_encoded_signature(FLAGS.model_dir, work)
        inputs = {"image": pixels, "spacing": np.asarray(spacing, np.float32)}
        rows = [("in-process, pixels", time_calls(lambda: local.predict(inputs), FLAGS.iterations)),
                ("in-process, file", time_calls(
                    lambda: local.predict_image(read_image_for_model(FLAGS.image, spacing)), FLAGS.iterations))]
        base = os.path.join(work, "base")
        os.makedirs(base)
        os.symlink(os.path.abspath(local.path), os.path.join(base, "1"))
        port = free_port()
        server = ServerProcess([f"--port={port}", "--rest_api_port=0", "--model_name=bench",
                                f"--model_base_path={base}"], os.path.join(work, "server.log"))
        try:
            server.wait_available(f"127.0.0.1:{port}", ["bench"])
            channel = client.make_channel(f"127.0.0.1:{port}")
            stub, names = client.make_stub(channel), local.landmark_names

            def lmk_client():
                read = read_image_for_model(FLAGS.image, spacing)
                return client.predict_image(stub, "bench", read, names=names,
                                            encoded=encode_for_request(FLAGS.image, read))

            rows += [("lmk-serve, tensor", time_calls(
                         lambda: client.predict_image(stub, "bench", image, names=names), FLAGS.iterations)),
                     ("lmk-serve, file bytes", time_calls(
                         lambda: client.predict_image(stub, "bench", image, names=names, encoded=encoded),
                         FLAGS.iterations)),
                     ("lmk-client, file", time_calls(lmk_client, FLAGS.iterations))]
            channel.close()
        finally:
            server.stop()
    figures = dict(rows)
    print(f"\n{FLAGS.image}: {image.shape[1]} x {image.shape[0]} px; request {len(encoded or b'') / 2**20:.2f} MiB "
          f"as file bytes, {pixels.nbytes / 2**20:.1f} MiB as float32\nmodel: {note}")
    print(f"  {'path':<24}{'median ms':>10}{'p90 ms':>10}")
    for name, (median, p90) in rows:
        print(f"  {name:<24}{median:>10.1f}{p90:>10.1f}")
    over = {"lmk-client vs in-process (file)": ("lmk-client, file", "in-process, file"),
            "served bytes vs in-process pixels": ("lmk-serve, file bytes", "in-process, pixels"),
            "served tensor vs in-process pixels": ("lmk-serve, tensor", "in-process, pixels")}
    for label, (a, b) in over.items():
        extra = figures[a][0] - figures[b][0]
        print(f"  {label:<36} {extra:+.1f} ms ({100 * extra / figures[b][0]:+.0f} %)")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    print(json.dumps({"latency_ms": {k: list(v) for k, v in figures.items()}, "model": note}))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
