"""lmk-export: trained stages -> one SavedModel in <base>/<name>/<version>/.

  lmk-export --model_dir=build/model --name=demo
  lmk-export --model_dir=build/model --name=demo --version=3 --presence_threshold=0.3

The version directory appears whole or not at all, so a running server never
loads half an export.
"""

from absl import flags

from lmk_tf import cli

flags.DEFINE_string("model_dir", None, "Directory with the trained global/ and local/ stages.")
flags.DEFINE_string("name", None, "Model name: letters, digits, '_', '-', '.' (the directory "
                    "under --base).")
flags.DEFINE_string("base", "saved_models", "Directory holding the served models.")
flags.DEFINE_integer("version", None, "Integer version; an existing one is refused (default: one "
                     "more than the highest in --base/--name).", lower_bound=1)
flags.DEFINE_float("presence_threshold", None,
                   "The served `present` is true when the global stage's confidence (its cell "
                   "probabilities summed, capped at 1) reaches this and the estimate lies in the "
                   "image (default: the one training wrote to <model_dir>/inference.json).")
flags.DEFINE_integer("local_iterations", None, "Times the local stage refines the estimate "
                     "(default: the number in <model_dir>/inference.json).", lower_bound=1)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import os

    cli.import_tensorflow_quietly()  # here, not at import: --help needs no TensorFlow
    from lmk_tf.export.savedmodel import export

    path = export(FLAGS.model_dir, os.path.join(FLAGS.base, FLAGS.name), version=FLAGS.version,
                  presence_threshold=FLAGS.presence_threshold, local_iterations=FLAGS.local_iterations)
    print(f"exported: {path}")


def run():
    cli.run_app(main, required=["model_dir", "name"])


if __name__ == "__main__":
    run()
