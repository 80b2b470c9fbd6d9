"""lmk-batch: landmarks for a whole archive of image files, as an Apache Beam job.

  lmk-batch --model=saved_models/isbi2015_ceph --input='data/*.bmp' --spacing=0.1,0.1 --output=out/ceph
  lmk-batch --model=saved_models/demo --manifest=files.txt --output=out/run \\
      --direct_num_workers=2 --direct_running_mode=multi_processing

Writes <output>-SSSSS-of-NNNNN.jsonl, one `lmk-predict --format=json` record
per image, and <output>-errors-SSSSS-of-NNNNN.jsonl, {"file", "error"} per
file that could not be read or predicted; the job goes on past bad files and
exits 0. Flags not listed here are Beam's pipeline options (--runner,
--direct_num_workers, Dataflow's, Flink's, Spark's); see docs/batch.md.
"""

import logging
import os
import sys

from absl import flags

from lmk_tf import cli
from lmk_tf.errors import ConfigError

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "SavedModel version directory or base directory (highest version).")
flags.DEFINE_string("input", None, "Glob of image files or DICOM series folders (quote it).")
flags.DEFINE_string("manifest", None, "Text file of image paths, one a line (relative: to its folder).")
flags.DEFINE_list("spacing", None,
                  "mm per pixel, array-axis order; needed for PNG/JPEG/BMP, overrides the file's.")
flags.DEFINE_string("output", None, "Output prefix: <output>-*.jsonl and <output>-errors-*.jsonl.")

BEAM_ARGS = []  # what run() took off the command line for Beam


def main(argv):
    from lmk_tf.batch.inputs import input_paths, stray_argument
    from lmk_tf.serving.inputs import parse_spacing

    stray = stray_argument(argv[1:] + BEAM_ARGS)
    if stray:
        raise ConfigError(f"unexpected argument {stray!r}; give the images with --input or --manifest")
    for name in ("model", "output"):
        if not getattr(FLAGS, name):
            raise ConfigError(f"--{name} is required")
    spacing = parse_spacing(FLAGS.spacing)
    paths = input_paths(FLAGS.input, FLAGS.manifest)
    cli.import_tensorflow_quietly()
    from lmk_tf.serving.servable import resolve_model_dir

    # Beam without its GCP extras logs "apitools not found" on the root logger
    # as it is imported; nothing lmk-batch's users need or can act on.
    logging.disable(logging.WARNING)
    try:
        from lmk_tf.batch.pipeline import run_batch
    finally:
        logging.disable(logging.NOTSET)

    # Every worker loads this one version, even if a newer one appears mid-job.
    model_dir, version = resolve_model_dir(FLAGS.model)
    print(f"== {len(paths)} files, model {model_dir} (version {version})", flush=True)
    summary = run_batch(paths, model_dir=os.path.abspath(model_dir), output=FLAGS.output, spacing=spacing,
                        beam_args=BEAM_ARGS)
    print(f"predicted {summary.predicted}: {' '.join(summary.outputs)}")
    print(f"errors {summary.failed}: {' '.join(summary.errors)}")


def run():
    from lmk_tf.batch.inputs import split_beam_args

    # --help is lmk-batch's own (cli.run_app prints it); everything else it does not know goes to Beam.
    if not {"-h", "--help", "--helpshort", "--helpfull"} & set(sys.argv[1:]):
        sys.argv, BEAM_ARGS[:] = split_beam_args(sys.argv, lambda argv: FLAGS(argv, known_only=True))
    cli.run_app(main)


if __name__ == "__main__":
    run()
