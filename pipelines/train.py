"""lmk-train: train the global or the local stage.

  lmk-train --stage=global --data=build/data --model_dir=build/model
  lmk-train --stage=local  --data=build/data --model_dir=build/model

Settings start from --preset and are overridden by the flags given; the
resolved settings go to <model_dir>/<stage>/config.json. Rerunning the same
command after an interruption resumes from the last completed epoch.
TensorBoard logs: <model_dir>/<stage>/logs.
"""

import dataclasses

from absl import flags

from lmk_tf import cli
from lmk_tf.method.config import LOCAL_MODES, STAGES
from lmk_tf.method.presets import PRESETS, get_preset

# lmk_tf.training.trainer.STRATEGIES, spelled out so that --help needs no
# TensorFlow; tests/pipelines/test_help.py checks that the two agree.
STRATEGIES = ("default", "mirrored", "multi_worker")

flags.DEFINE_enum("stage", None, list(STAGES), "Which stage to train.")
flags.DEFINE_string("data", None, "Directory written by lmk-prepare (its train-* shards are used).")
flags.DEFINE_string("model_dir", None, "Where the stage's checkpoints, logs and model go "
                    "(<model_dir>/<stage>/).")
flags.DEFINE_enum("preset", "synthetic", list(PRESETS),
                  "Default settings to start from: generated images, cephalograms, CT, head MR, or "
                  "the synthetic volume benchmark (lmk_tf/method/presets.py).")
flags.DEFINE_integer("steps", None, "Training steps (default: preset's).", lower_bound=1)
flags.DEFINE_integer("batch_size", None, "Images per step; a local-stage image gives one "
                     "sub-image per landmark (default: preset's).", lower_bound=1)
flags.DEFINE_float("learning_rate", None, "Adam (amsgrad) learning rate of the first step, "
                   "cosine-decayed to 5% of it over --steps (default: preset's).", lower_bound=0.0)
flags.DEFINE_float("alpha", None, "Weight of the classification loss beside the displacement "
                   "loss (default: preset's; paper: 20 ceph, 8 CT, 2 MR).")
flags.DEFINE_integer("patch_size", None, "Pixels per axis, a multiple of the network's stride. "
                     "Global: the training patch (serving sees the whole image); local: the "
                     "sub-image (default: preset's).")
flags.DEFINE_enum("displacement_encoding", None, ["cells", "log"],
                  "Regression target: displacement / stride (cells) or sign(d)*log10(|d|+1) as "
                  "in the authors' code (log) (default: preset's).")
flags.DEFINE_enum("local_mode", None, list(LOCAL_MODES),
                  "Local stage: one trunk shared by all landmarks, each with its own head, or "
                  "one network per landmark as in the paper (default: preset's).")
flags.DEFINE_float("local_offset_mm", None, "Local training crops are centred up to this many mm "
                   "(per axis) from the true landmark; about the global stage's error or more "
                   "(default: preset's).")
flags.DEFINE_integer("seed", None, "Seed of initialisation and the input pipeline (default: 0).")
flags.DEFINE_integer("steps_per_epoch", None, "Steps between checkpoints and progress lines; "
                     "--steps is rounded up to whole epochs (default: preset's).", lower_bound=1)
flags.DEFINE_enum("strategy", "default", list(STRATEGIES),
                  "tf.distribute strategy: one device, MirroredStrategy (this machine's GPUs) or "
                  "MultiWorkerMirroredStrategy (needs TF_CONFIG).")
FLAGS = flags.FLAGS

OVERRIDES = ("steps", "batch_size", "learning_rate", "alpha", "patch_size", "displacement_encoding",
             "local_mode", "local_offset_mm", "seed", "steps_per_epoch")


def main(argv):
    del argv
    cli.import_tensorflow_quietly()
    from lmk_tf.training.trainer import load_dataset_info, train_stage

    info = load_dataset_info(FLAGS.data)
    preset = get_preset(FLAGS.preset, int(info["ndim"]))
    config = preset.stage(FLAGS.stage)
    config.spacing = float(info[f"{FLAGS.stage}_spacing"])
    changes = {k: getattr(FLAGS, k) for k in OVERRIDES if getattr(FLAGS, k) is not None}
    config = dataclasses.replace(config, **changes).validate()
    print(f"== training the {FLAGS.stage} stage: {config.steps} steps, batch {config.batch_size}, "
          f"{config.spacing} mm, -> {FLAGS.model_dir}/{FLAGS.stage}", flush=True)
    train_stage(config, FLAGS.data, FLAGS.model_dir, inference=preset.inference, strategy=FLAGS.strategy)
    print(f"done: {FLAGS.model_dir}/{FLAGS.stage}/model.keras")


def run():
    cli.run_app(main, required=["stage", "data", "model_dir"])


if __name__ == "__main__":
    run()
