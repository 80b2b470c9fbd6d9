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

cli.import_tensorflow_quietly()
from lmk_tf.method.config import STAGES  # noqa: E402
from lmk_tf.method.presets import get_preset  # noqa: E402
from lmk_tf.training.trainer import STRATEGIES, load_dataset_info, train_stage  # noqa: E402

flags.DEFINE_enum("stage", None, list(STAGES), "Which stage to train.")
flags.DEFINE_string("data", None, "Directory written by lmk-prepare.")
flags.DEFINE_string("model_dir", None, "Where the stage's checkpoints, logs and model go.")
flags.DEFINE_enum("preset", "synthetic", ["synthetic", "ceph"], "Default settings to start from.")
flags.DEFINE_integer("steps", None, "Training steps (default: preset's).", lower_bound=1)
flags.DEFINE_integer("batch_size", None, "Images per step (default: preset's).", lower_bound=1)
flags.DEFINE_float("learning_rate", None, "Initial learning rate (cosine decay).", lower_bound=0.0)
flags.DEFINE_float("alpha", None, "Weight of the classification loss (paper: 20 ceph, 8 CT, 2 MR).")
flags.DEFINE_integer("patch_size", None, "Global: training patch; local: sub-image size (pixels).")
flags.DEFINE_enum("displacement_encoding", None, ["cells", "log"], "Regression target encoding.")
flags.DEFINE_enum("local_mode", None, ["shared", "specialised"], "Local nets: one shared trunk or one per landmark.")
flags.DEFINE_float("local_offset_mm", None, "Max offset of local training crops from the landmark.")
flags.DEFINE_integer("seed", None, "Seed of initialisation and the input pipeline.")
flags.DEFINE_integer("steps_per_epoch", None, "Steps between checkpoints and progress lines.", lower_bound=1)
flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy.")
FLAGS = flags.FLAGS

OVERRIDES = ("steps", "batch_size", "learning_rate", "alpha", "patch_size", "displacement_encoding",
             "local_mode", "local_offset_mm", "seed", "steps_per_epoch")


def main(argv):
    del argv
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
    for name in ("stage", "data", "model_dir"):
        flags.mark_flag_as_required(name)
    cli.run_app(main)


if __name__ == "__main__":
    run()
