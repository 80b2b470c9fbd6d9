"""lmk-export: trained stages -> one SavedModel in <base>/<name>/<version>/.

  lmk-export --model_dir=build/model --name=demo
  lmk-export --model_dir=build/model --name=demo --version=3 --presence_threshold=0.3
  lmk-export --model_dir=build/model --name=ct --calibrate --images=VAL/images --landmarks=VAL/landmarks
  lmk-export --model_dir=build/model --name=ceph --calibration=docs/isbi2015/calibration.json

The served `expected_error_mm` and `radius90_mm` are the model's uncertainty
signals mapped to mm. --calibrate fits that map on validation images (never
the training images, nor those a figure is reported on); --calibration takes
one fitted elsewhere (benchmarks/isbi2015_calibrate.py --output); with neither
the export is uncalibrated and says so.

The version directory appears whole or not at all, so a running server never
loads half an export.
"""

from absl import flags

from lmk_tf import cli
from lmk_tf.errors import ConfigError
from pipelines import source_flags

flags.adopt_module_key_flags(source_flags)
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
flags.DEFINE_bool("calibrate", False, "Fit the predicted error (expected_error_mm, radius90_mm) on the validation "
                  "images given by --images/--landmarks, --manifest or --synthetic (with --fold: that fold).")
flags.DEFINE_string("calibration", None, "A calibration JSON fitted elsewhere (benchmarks/isbi2015_calibrate.py "
                    "--output) for the export to carry.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import os

    if FLAGS.calibrate and FLAGS.calibration:
        raise ConfigError("give --calibrate (fit on validation images) or --calibration=FILE, not both")
    cli.import_tensorflow_quietly()  # here, not at import: --help needs no TensorFlow
    from lmk_tf.evaluation import calibration as fitting
    from lmk_tf.export.savedmodel import export
    from lmk_tf.method.model_dir import load_dataset_info

    names = load_dataset_info(FLAGS.model_dir)["landmark_names"]
    calibration = None
    if FLAGS.calibration:
        calibration = fitting.read_calibration(FLAGS.calibration, names)
    elif FLAGS.calibrate:
        samples, source_names = source_flags.load_source()
        if FLAGS.fold >= 0:
            _, samples = source_flags.split_source(samples)
        if list(source_names) != list(names):
            raise ConfigError(f"the validation images are annotated with {list(source_names)}, "
                              f"the model finds {list(names)}")
        print(f"== calibrating the predicted error on {len(samples)} validation images", flush=True)
        calibration = fitting.fit_for_model_dir(FLAGS.model_dir, samples, names,
                                                presence_threshold=FLAGS.presence_threshold,
                                                local_iterations=FLAGS.local_iterations)
        print(f"   fitted on {calibration['fitted_on']}; radius90 = {calibration['q90']:.2f} x expected error")
    else:
        print("note: no --calibrate or --calibration: expected_error_mm and radius90_mm are uncalibrated")
    path = export(FLAGS.model_dir, os.path.join(FLAGS.base, FLAGS.name), version=FLAGS.version,
                  presence_threshold=FLAGS.presence_threshold, local_iterations=FLAGS.local_iterations,
                  calibration=calibration)
    print(f"exported: {path}")


def run():
    cli.run_app(main, required=["model_dir", "name"])


if __name__ == "__main__":
    run()
