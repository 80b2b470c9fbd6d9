"""lmk-export: trained stages -> one SavedModel in saved_models/<name>/<version>/.

  lmk-export --model_dir=build/model --name=demo
"""

from absl import flags

from lmk_tf import cli

cli.import_tensorflow_quietly()
from lmk_tf.export.savedmodel import export  # noqa: E402

flags.DEFINE_string("model_dir", None, "Directory with the trained global/ and local/ stages.")
flags.DEFINE_string("name", None, "Model name (the directory under --base).")
flags.DEFINE_string("base", "saved_models", "Directory holding the served models.")
flags.DEFINE_integer("version", None, "Integer version (default: one more than the highest).", lower_bound=1)
flags.DEFINE_float("presence_threshold", None, "Global peak probability for 'present' (default: the one "
                   "training wrote to <model_dir>/inference.json; this overrides it).")
flags.DEFINE_integer("local_iterations", None, "Times the local stage refines (default: the number in "
                     "<model_dir>/inference.json; this overrides it).", lower_bound=1)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import os

    path = export(FLAGS.model_dir, os.path.join(FLAGS.base, FLAGS.name), version=FLAGS.version,
                  presence_threshold=FLAGS.presence_threshold, local_iterations=FLAGS.local_iterations)
    print(f"exported: {path}")


def run():
    for name in ("model_dir", "name"):
        flags.mark_flag_as_required(name)
    cli.run_app(main)


if __name__ == "__main__":
    run()
