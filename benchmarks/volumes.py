r"""Benchmark: 3D landmarks through files, as a 3D user works, and a CT-sized volume served.

  .venv/bin/python benchmarks/volumes.py
  .venv/bin/python benchmarks/volumes.py --validation        # choose settings here, not on the held-out seed
  .venv/bin/python benchmarks/volumes.py --full_size         # latency and memory on 512 x 512 x 300

Writes synthetic volumes (lmk_tf.synthetic) as .nii.gz files with their
landmarks as 3D Slicer .mrk.json files in world mm: every volume has its own
random oblique direction and non-zero origin, 0.8 x 0.8 x 2.0 mm voxels, and
its landmark file is in LPS or RAS at random. Then runs the commands a user
runs, each as a subprocess, on those files:

  lmk-prepare --images --landmarks --allow_outside --preset=synthetic3d
  lmk-train --stage=global; lmk-train --stage=local
  lmk-export --name=synthetic3d --base=saved_models --calibrate (on calibration files)
                                                      (saved_models/synthetic3d/<version>/)
  lmk-evaluate --model=<that version> on held-out files
  lmk-predict --format=mrk.json on a few held-out files, read back as Slicer would

Training images come from seed 1000 + --seed, held-out ones from 5000 + --seed
(never used to choose settings), validation ones from 99 + --seed, and the
files the predicted error is calibrated on from 300 + --seed. The last
line is `mre_mm=<value> sdr2_pct=<value> train_s=<seconds>` (train_s: the two
lmk-train commands, wall clock).

--full_size: the exported model (--model, default the newest
saved_models/synthetic3d version) answers a 512 x 512 x 300 int16 volume at
0.7 x 0.7 x 1.0 mm in this process (LocalModel); the last line is
`median_s=<latency> peak_rss_mb=<process peak>`.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
from absl import app, flags

REPO = sys.path[0]

flags.DEFINE_integer("num_train", 200, "Training volumes.")
flags.DEFINE_integer("num_test", 50, "Held-out (or, with --validation, validation) volumes.")
flags.DEFINE_integer("num_calibration", 20, "Volumes the predicted error is calibrated on (their own seed).",
                     lower_bound=2)
flags.DEFINE_integer("seed", 0, "Offsets the data seeds and seeds the training.")
flags.DEFINE_bool("validation", False, "Evaluate on the validation seed instead of the held-out one.")
flags.DEFINE_integer("global_steps", None, "Global-stage steps (default: the preset's).")
flags.DEFINE_integer("local_steps", None, "Local-stage steps (default: the preset's).")
flags.DEFINE_string("workdir", "build/bench_volumes", "Work directory (emptied first).")
flags.DEFINE_string("saved_models", "saved_models", "Base of the exported model (<base>/synthetic3d/<version>).")
flags.DEFINE_integer("predict_files", 5, "Held-out files answered by lmk-predict --format=mrk.json.",
                     lower_bound=0)
flags.DEFINE_bool("full_size", False, "Only measure the exported model on a 512 x 512 x 300 volume.")
flags.DEFINE_string("model", None, "With --full_size: the SavedModel (default the newest synthetic3d).")
flags.DEFINE_integer("repeats", 5, "With --full_size: timed predictions after one warm-up.", lower_bound=1)
FLAGS = flags.FLAGS

PRESET = "synthetic3d"
SHAPE = (48, 120, 120)  # slices, rows, cols: 96 mm in every direction
SPACING = (2.0, 0.8, 0.8)
MAX_TILT_DEG = 30.0


def random_geometry(rng):
    """A random oblique direction (rotation about all three axes) and an origin far from 0."""
    from lmk_tf.synthetic.placement import rotation_matrix

    rotation = rotation_matrix(3, rng.uniform(-MAX_TILT_DEG, MAX_TILT_DEG, 3))
    # Array axes (slice, row, col) along a rotated ITK identity (z, y, x).
    return rng.uniform(-200.0, 200.0, 3), rotation @ np.eye(3)[::-1]


def write_volumes(directory: str, n: int, seed: int) -> list[str]:
    """n synthetic volumes as <directory>/images/*.nii.gz and <directory>/landmarks/*.mrk.json.

    The landmark files hold every landmark in world mm, also the one a
    sample may have outside its field of view (prepare with --allow_outside).
    Returns the image paths.
    """
    from lmk_tf.image import Image
    from lmk_tf.io import write_image
    from lmk_tf.io.landmarks import Landmarks
    from lmk_tf.io.slicer_markups import write_mrk_json
    from lmk_tf.synthetic import make_sample, sample_seed

    images, marks = os.path.join(directory, "images"), os.path.join(directory, "landmarks")
    os.makedirs(images, exist_ok=True)
    os.makedirs(marks, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        sample, points, names = make_sample(3, sample_seed(seed, i), shape=SHAPE, spacing=SPACING)
        origin, direction = random_geometry(rng)
        # Stored as CT stores it: 16-bit integers.
        image = Image(np.round(sample.array).astype(np.int16), SPACING, origin, direction)
        name = f"case{seed}-{i:04d}"
        paths.append(os.path.join(images, f"{name}.nii.gz"))
        write_image(image, paths[-1])
        write_mrk_json(os.path.join(marks, f"{name}.mrk.json"), Landmarks(names, points), image=image,
                       coordinate_system=str(rng.choice(["LPS", "RAS"])))
    return paths


def command(name: str, *args, log=None) -> tuple[float, str]:
    """Runs `python -m pipelines.<name> args` (niced like its parent); returns its wall time and output."""
    t = time.time()
    p = subprocess.run([sys.executable, "-m", f"pipelines.{name}", *args], cwd=REPO, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if log:
        with open(log, "a") as f:
            f.write(f"$ lmk-{name} {' '.join(args)}\n{p.stdout}\n")
    if p.returncode:
        sys.exit(f"lmk-{name} failed (exit {p.returncode}):\n{p.stdout[-3000:]}")
    return time.time() - t, p.stdout


def slicer_errors(answers_dir: str, test_dir: str, names) -> np.ndarray:
    """Radial errors (mm) of lmk-predict's .mrk.json answers, read back as Slicer files, vs the truth."""
    from lmk_tf.io import read_image
    from lmk_tf.io.landmarks import read_landmarks

    errors = []
    for answer in sorted(os.listdir(answers_dir)):
        stem = answer[: -len(".mrk.json")]
        image = read_image(os.path.join(test_dir, "images", f"{stem}.nii.gz"))
        truth = read_landmarks(os.path.join(test_dir, "landmarks", f"{stem}.mrk.json")).reindex(names)
        got = read_landmarks(os.path.join(answers_dir, answer)).reindex(names)
        ok = truth.present & got.present & image.contains_index(truth.to_index(image).points)
        errors += list(np.linalg.norm(got.points[ok] - truth.points[ok], axis=1))
    return np.array(errors)


def run_benchmark():
    work = FLAGS.workdir
    shutil.rmtree(work, ignore_errors=True)
    train_dir, test_dir = os.path.join(work, "train"), os.path.join(work, "test")
    test_seed = (99 if FLAGS.validation else 5000) + FLAGS.seed
    log = os.path.join(work, "commands.log")
    print(f"== writing {FLAGS.num_train} training and {FLAGS.num_test} "
          f"{'validation' if FLAGS.validation else 'held-out'} volumes ({SHAPE} at {SPACING} mm, oblique)",
          flush=True)
    t = time.time()
    write_volumes(train_dir, FLAGS.num_train, 1000 + FLAGS.seed)
    test_images = write_volumes(test_dir, FLAGS.num_test, test_seed)
    calibration_dir = os.path.join(work, "calibration")
    write_volumes(calibration_dir, FLAGS.num_calibration, 300 + FLAGS.seed)
    print(f"   {time.time() - t:.0f}s", flush=True)

    data, model = os.path.join(work, "data"), os.path.join(work, "model")
    files = [f"--images={train_dir}/images", f"--landmarks={train_dir}/landmarks", "--allow_outside"]
    print("== lmk-prepare", flush=True)
    prepare_s, _ = command("prepare", *files, f"--preset={PRESET}", f"--output={data}", log=log)
    from lmk_tf.method.presets import get_preset

    preset = get_preset(PRESET, 3).with_steps(FLAGS.global_steps, FLAGS.local_steps)
    train_s = {}
    for config in preset.stages:
        stage = config.stage
        print(f"== lmk-train --stage={stage}: {config.steps} steps ({prepare_s + sum(train_s.values()):.0f}s so far)",
              flush=True)
        extra = [f"--steps={config.steps}", f"--steps_per_epoch={config.steps_per_epoch}"]
        train_s[stage], _ = command("train", f"--stage={stage}", f"--data={data}", f"--model_dir={model}",
                                 f"--preset={PRESET}", f"--seed={FLAGS.seed}", *extra, log=log)
        print(f"   {train_s[stage]:.0f}s", flush=True)
    _, out = command("export", f"--model_dir={model}", f"--name={PRESET}", f"--base={FLAGS.saved_models}",
                     "--calibrate", f"--images={calibration_dir}/images", f"--landmarks={calibration_dir}/landmarks",
                     "--allow_outside", log=log)
    saved = out.split("exported: ")[-1].strip()
    print(f"== exported {saved}; lmk-evaluate on {FLAGS.num_test} files", flush=True)
    report = os.path.join(work, "eval")
    command("evaluate", f"--model={saved}", f"--images={test_dir}/images", f"--landmarks={test_dir}/landmarks",
            "--allow_outside", f"--output={report}", "--overlays=3", log=log)
    summary = json.load(open(os.path.join(report, "summary.json")))
    print(open(os.path.join(report, "summary.md")).read().strip())
    if FLAGS.predict_files:
        answers = os.path.join(work, "answers")
        command("predict", f"--model={saved}", "--format=mrk.json", f"--output={answers}/",
                *test_images[: FLAGS.predict_files], log=log)
        errors = slicer_errors(answers, test_dir, summary["names"])
        print(f"lmk-predict --format=mrk.json on {FLAGS.predict_files} files, read back as Slicer points: "
              f"MRE {errors.mean():.2f} mm over {errors.size} landmarks")
    overall = summary["overall"]
    unc = summary.get("uncertainty")
    if unc:
        print(f"predicted error on the {FLAGS.num_test} volumes (calibrated on {FLAGS.num_calibration} others): "
              f"spearman={unc['spearman']:.3f} auroc2={unc['auroc_2mm']:.3f} auroc4={unc['auroc_4mm']:.3f} "
              f"coverage90={100 * unc['coverage90']:.1f}")
    print(f"data: prepare {prepare_s:.0f}s; train global {train_s['global']:.0f}s, local {train_s['local']:.0f}s; "
          f"inference {summary['seconds_per_image'] * 1000:.0f} ms/volume; commands in {log}")
    print(f"mre_mm={overall['mre']:.3f} sdr2_pct={overall['sdr']['2.0']:.1f} train_s={sum(train_s.values()):.0f}")


def full_size_volume(shape=(300, 512, 512)):
    """A CT-like int16 volume: air, a body of soft tissue, bone blocks and noise."""
    rng = np.random.default_rng(0)
    volume = np.full(shape, -1000, np.int16)
    d, h, w = shape
    volume[:, h // 8: 7 * h // 8, w // 8: 7 * w // 8] = 40
    volume[d // 3: d // 2, h // 3: h // 2, w // 3: w // 2] = 1200
    volume += rng.integers(-30, 30, size=shape, dtype=np.int16)
    return volume


def run_full_size():
    import tensorflow as tf

    from lmk_tf.export.tensors import aligned, as_tensor
    from lmk_tf.image import Image
    from lmk_tf.serving.local import LocalModel
    from lmk_tf.serving.validation import Limits

    # 78.6 M voxels: above the server's default --max_image_elements (64 Mi), as
    # `lmk-serve --max_image_elements=100000000` would be started for CT.
    model = LocalModel(FLAGS.model or os.path.join(FLAGS.saved_models, PRESET), limits=Limits(max_elements=10**8))
    loaded_mb = peak_rss_mb()
    image = Image(full_size_volume(), (1.0, 0.7, 0.7))
    print(f"== {model.path}: {image.shape} int16 at {image.spacing} mm "
          f"({image.array.size * 4 / 2**20:.0f} MiB as float32); RSS after loading {loaded_mb:.0f} MB", flush=True)
    model.predict_image(image)  # warm-up: the first call optimises the graph
    seconds = []
    for _ in range(FLAGS.repeats):
        t = time.time()
        model.predict_image(image)
        seconds.append(time.time() - t)
    peak_mb = peak_rss_mb()  # before the part below, whose own input tensor would count
    # The signature alone, on a tensor made once: what the graph costs without
    # the request's int16 -> float32 conversion, checks and tensor copy.
    fn = model.served.signature("serving_default").fn
    inputs = {"image": as_tensor(aligned(image.array, np.float32)[..., None]),
              "spacing": tf.constant(image.spacing, tf.float32)}
    graph = []
    for _ in range(FLAGS.repeats):
        t = time.time()
        fn(**inputs)["landmarks_index"].numpy()
        graph.append(time.time() - t)
    print(f"   LocalModel.predict_image {', '.join(f'{s:.2f}' for s in seconds)} s; "
          f"the signature alone {', '.join(f'{s:.2f}' for s in graph)} s (median {np.median(graph):.2f})")
    print(f"median_s={np.median(seconds):.2f} peak_rss_mb={peak_mb:.0f}")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv):
    del argv
    from lmk_tf.cli import import_tensorflow_quietly, quiet_logs

    quiet_logs()
    if FLAGS.full_size:
        import_tensorflow_quietly()
        run_full_size()
    else:
        run_benchmark()


if __name__ == "__main__":
    app.run(main)
