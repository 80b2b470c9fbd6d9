"""Benchmark: train both stages from scratch on synthetic images, evaluate held-out.

  .venv/bin/python benchmarks/synthetic.py --ndim=2
  .venv/bin/python benchmarks/synthetic.py --ndim=3

Trains on images generated with one seed (1000 + --seed), calibrates the
predicted error (expected_error_mm, radius90_mm) on a validation seed
(99 + --seed) and evaluates on a third (5000 + --seed, never seen in training
nor used to choose anything). Also measures how fast the tf.data
input pipeline produces batches compared with how fast a training step
consumes them, and the peak memory of the process. The last line is
`mre_mm=<value> sdr2_pct=<value> train_s=<seconds>`.
"""

import math
import os
import resource
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

flags.DEFINE_enum("ndim", "2", ["2", "3"], "2D or 3D synthetic images.")
flags.DEFINE_integer("num_train", None, "Training images (default 400 in 2D, 200 in 3D).")
flags.DEFINE_integer("num_test", 50, "Held-out images.")
flags.DEFINE_integer("num_validation", 40, "Validation images the predicted error is calibrated on.", lower_bound=2)
flags.DEFINE_integer("global_steps", None, "Global-stage steps (default: preset).")
flags.DEFINE_integer("local_steps", None, "Local-stage steps (default: preset).")
flags.DEFINE_string("workdir", None, "Work directory (default build/bench_synthetic_<ndim>d).")
flags.DEFINE_integer("seed", 0, "Seed of the model; data seeds are derived from it.")
flags.DEFINE_integer("local_iterations", None, "Local refinements at inference (default: the preset's, "
                     "1 in 2D, 6 in 3D).", lower_bound=1)
FLAGS = flags.FLAGS

NUM_TRAIN = {2: 400, 3: 200}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def pipeline_speed(files, config, num_landmarks, num_images, batches=30):
    """Seconds per batch the input pipeline alone produces, in steady state.

    Warm-up covers one full pass, so the parsed images are cached as they are
    for all but the first of the many passes training makes.
    """
    from lmk_tf.data.datasets import training_dataset

    it = iter(training_dataset(files, config, num_landmarks))
    for _ in range(math.ceil(num_images / config.batch_size) + 5):
        next(it)
    t = time.time()
    for _ in range(batches):
        next(it)
    return (time.time() - t) / batches


def main(argv):
    del argv
    from lmk_tf import recipe
    from lmk_tf.cli import quiet_logs
    from lmk_tf.data.sources import synthetic_source
    from lmk_tf.evaluation.metrics import format_summary
    from lmk_tf.method.presets import get_preset
    from lmk_tf.training.trainer import stage_files

    quiet_logs()  # the SavedModel writer's INFO lines would bury the figures
    ndim = int(FLAGS.ndim)
    num_train = FLAGS.num_train or NUM_TRAIN[ndim]
    work = FLAGS.workdir or os.path.join("build", f"bench_synthetic_{ndim}d")
    shutil.rmtree(work, ignore_errors=True)
    preset = (get_preset("synthetic", ndim).with_steps(FLAGS.global_steps, FLAGS.local_steps)
              .with_stages(seed=FLAGS.seed).with_inference(local_iterations=FLAGS.local_iterations))

    print(f"== generating {num_train} training images and {FLAGS.num_test} held-out ones ({ndim}D)", flush=True)
    samples, names = synthetic_source(ndim, num_train, 1000 + FLAGS.seed)
    held_out, _ = synthetic_source(ndim, FLAGS.num_test, 5000 + FLAGS.seed)
    validation, _ = synthetic_source(ndim, FLAGS.num_validation, 99 + FLAGS.seed)
    result = recipe.run(preset, work, samples, names, evaluate_on=held_out, calibrate_on=validation,
                        report_dir=os.path.join(work, "eval"), overlays=3)

    for config in preset.stages:
        pipe_s = pipeline_speed(stage_files(result.data_dir, config.stage), config, len(names), num_train)
        step_s = result.train_seconds[config.stage] / config.steps
        print(f"   {config.stage}: {result.train_seconds[config.stage]:.0f}s, {step_s * 1000:.0f} ms/step; "
              f"input pipeline {pipe_s * 1000:.1f} ms/batch ({step_s / pipe_s:.1f}x faster than training "
              f"consumes)", flush=True)
    summary = result.summary
    print(format_summary(summary, per_landmark=True))
    overall = summary["overall"]
    print(f"data preparation {result.prepare_seconds:.0f}s; inference {summary['seconds_per_image'] * 1000:.0f} "
          f"ms/image (the exported SavedModel, local stage x{preset.inference.local_iterations}); "
          f"peak RSS {peak_rss_mb():.0f} MB; report in {work}/eval")
    unc = summary.get("uncertainty")
    if unc:
        print(f"predicted error on the held-out images (calibrated on {result.calibration['fitted_on']}): "
              f"spearman={unc['spearman']:.3f} auroc2={unc['auroc_2mm']:.3f} auroc4={unc['auroc_4mm']:.3f} "
              f"coverage90={100 * unc['coverage90']:.1f}")
    print(f"mre_mm={overall['mre']:.3f} sdr2_pct={overall['sdr'][2.0]:.1f} "
          f"train_s={sum(result.train_seconds.values()):.0f}")


if __name__ == "__main__":
    app.run(main)
