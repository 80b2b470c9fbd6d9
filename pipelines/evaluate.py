r"""lmk-evaluate: errors of an exported model (what is served) on held-out images.

  lmk-evaluate --model=saved_models/demo --synthetic=50 --seed=7 --output=build/eval
  lmk-evaluate --model_dir=build/isbi --images=DIR --landmarks=senior.csv,junior.csv \
      --spacing=0.1 --fold=0 --output=docs/isbi2015

--model is a SavedModel (version or base directory); --model_dir (trained
stages) is exported to a temporary SavedModel first, with the inference
settings training wrote to <model_dir>/inference.json.
With --fold, only that held-out fold is evaluated. Writes errors.csv,
summary.md, summary.json, errors_boxplot.png, sdr_curve.png, worst/*.png and
uncertainty.md; for a model that predicts its error (expected_error_mm,
radius90_mm), uncertainty.md judges that prediction (Spearman, AUROC, radius90
coverage, calibration bins, risk-coverage) and uncertainty.csv,
calibration.png and risk_coverage.png come with it; for an older model,
uncertainty.md is the one line saying it has none.
"""

from absl import flags

from lmk_tf import cli
from lmk_tf.errors import ConfigError
from lmk_tf.evaluation.metrics import format_summary
from pipelines import source_flags

flags.adopt_module_key_flags(source_flags)
flags.DEFINE_string("model", None, "SavedModel version directory or base directory (as lmk-predict).")
flags.DEFINE_string("model_dir", None, "Directory with the trained global/ and local/ stages "
                    "(instead of --model; exported to a temporary SavedModel first).")
flags.DEFINE_string("output", None, "Directory for the report.")
flags.DEFINE_integer("overlays", 5, "How many of the worst images get an overlay picture "
                     "(worst/*.png).", lower_bound=0)
flags.DEFINE_float("presence_threshold", None,
                   "With --model_dir: a landmark is predicted present when the global stage's confidence "
                   "(its cell probabilities summed, capped at 1) reaches this and the estimate lies in the "
                   "image; absent ones count as missed (default: the one training wrote to "
                   "<model_dir>/inference.json).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if bool(FLAGS.model) == bool(FLAGS.model_dir):
        raise ConfigError("give --model (a SavedModel) or --model_dir (trained stages), exactly one")
    if FLAGS.model and FLAGS.presence_threshold is not None:
        raise ConfigError("--presence_threshold applies to --model_dir; a SavedModel has its own built in")
    cli.import_tensorflow_quietly()  # here, not at import: --help needs no TensorFlow
    from lmk_tf import recipe

    samples, names = source_flags.load_source()
    if FLAGS.fold >= 0:
        _, samples = source_flags.split_source(samples)
    if FLAGS.model:
        summary = recipe.evaluate_saved_model(FLAGS.model, samples, names, FLAGS.output, overlays=FLAGS.overlays)
    else:
        summary = recipe.evaluate(FLAGS.model_dir, samples, names, FLAGS.output, overlays=FLAGS.overlays,
                                  presence_threshold=FLAGS.presence_threshold)
    print(format_summary(summary, per_landmark=True))
    print(f"{summary['seconds_per_image'] * 1000:.0f} ms per image; report: {FLAGS.output}/summary.md")


def run():
    cli.run_app(main, required=["output"])


if __name__ == "__main__":
    run()
