"""Latency of the ISBI 2015 SavedModel on full-resolution cephalograms (1935 x 2400, 0.1 mm).

  .venv/bin/python benchmarks/isbi2015.py [--model=saved_models/isbi2015_ceph] [--data=../shared/data/isbi2015]

Loads the newest version with plain TensorFlow (as TF Serving would), runs the
`serving_default` signature on real images (or, without the data, on
full-size synthetic pictures of the same size), and prints the median and
90th-percentile latency and the process's peak memory. The last line is
`median_ms=<value> p90_ms=<value> peak_rss_mb=<value>`.
"""

import glob
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

flags.DEFINE_string("model", "saved_models/isbi2015_ceph", "Model base directory (newest version is used).")
flags.DEFINE_string("data", "../shared/data/isbi2015", "ISBI 2015 directory; synthetic images if absent.")
flags.DEFINE_integer("images", 10, "Distinct images to time.", lower_bound=1)
flags.DEFINE_integer("repeats", 2, "Passes over the images.", lower_bound=1)
FLAGS = flags.FLAGS


def load_images(n):
    import numpy as np

    files = sorted(glob.glob(os.path.join(FLAGS.data, "images", "*.jpg")))[:n]
    if files:
        from PIL import Image as PILImage

        return [np.asarray(PILImage.open(f).convert("L"), np.float32) for f in files], "ISBI 2015 images"
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 255, (2400, 1935)).astype(np.float32) for _ in range(n)], "synthetic 2400x1935 noise"


def cpu_description() -> str:
    """The CPU's model and widest vector unit: the same graph runs about 2x apart on an AVX2 and an
    AVX-512 machine, so a latency figure means little without them."""
    model, flags_line = "unknown CPU", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key.strip() == "flags" and not flags_line:
                    flags_line = value
    except OSError:
        return model
    cpu_flags = set(flags_line.split())
    vector = "AVX-512" if "avx512f" in cpu_flags else "AVX2" if "avx2" in cpu_flags else "no AVX2"
    return f"{model}, {vector}"


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    versions = sorted((int(v) for v in os.listdir(FLAGS.model) if v.isdigit()), reverse=True)
    if not versions:
        sys.exit(f"no version directories in {FLAGS.model}")
    path = os.path.join(FLAGS.model, str(versions[0]))
    fn = tf.saved_model.load(path).signatures["serving_default"]
    images, what = load_images(FLAGS.images)
    spacing = tf.constant([0.1, 0.1], tf.float32)
    fn(image=tf.constant(images[0][..., None]), spacing=spacing)  # warm-up: traces the graph
    times = []
    for _ in range(FLAGS.repeats):
        for img in images:
            x = tf.constant(img[..., None])
            t = time.perf_counter()
            out = fn(image=x, spacing=spacing)
            out["landmarks_mm"].numpy()
            times.append((time.perf_counter() - t) * 1000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    print(f"{path}: {len(times)} runs on {what}, {threads} threads, {cpu_description()}")
    print(f"median_ms={np.median(times):.0f} p90_ms={np.percentile(times, 90):.0f} peak_rss_mb={peak:.0f}")


if __name__ == "__main__":
    app.run(main)
