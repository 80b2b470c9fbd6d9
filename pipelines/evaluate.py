r"""lmk-evaluate: errors of a trained global-to-local model on held-out images.

  lmk-evaluate --model_dir=build/model --synthetic=50 --seed=7 --output=build/eval
  lmk-evaluate --model_dir=build/isbi --images=DIR --landmarks=senior.csv,junior.csv \
      --spacing=0.1 --fold=0 --output=docs/isbi2015

With --fold, only that held-out fold is evaluated. Writes errors.csv,
summary.md, summary.json, errors_boxplot.png, sdr_curve.png, worst/*.png.
"""

from absl import flags

from lmk_tf import cli
from lmk_tf.evaluation.metrics import format_summary
from lmk_tf.evaluation.report import evaluate
from pipelines import source_flags

flags.adopt_module_key_flags(source_flags)
flags.DEFINE_string("model_dir", None, "Directory with the trained global/ and local/ stages.")
flags.DEFINE_string("output", None, "Directory for the report.")
flags.DEFINE_integer("overlays", 5, "How many of the worst images get an overlay picture "
                     "(worst/*.png).", lower_bound=0)
flags.DEFINE_float("presence_threshold", 0.5,
                   "A landmark is predicted present when the global stage's confidence (its cell "
                   "probabilities summed, capped at 1) reaches this and the estimate lies in the "
                   "image; absent ones count as missed.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    cli.import_tensorflow_quietly()  # here, not at import: --help needs no TensorFlow
    from lmk_tf.method.model_dir import Predictor, assemble

    samples, names = source_flags.load_source()
    if FLAGS.fold >= 0:
        _, samples = source_flags.split_source(samples)
    predictor = Predictor(assemble(FLAGS.model_dir, presence_threshold=FLAGS.presence_threshold))
    print(f"== evaluating on {len(samples)} images -> {FLAGS.output}", flush=True)
    summary = evaluate(predictor, samples, names, FLAGS.output, overlays=FLAGS.overlays)
    print(format_summary(summary, per_landmark=True))
    print(f"{summary['seconds_per_image'] * 1000:.0f} ms per image; report: {FLAGS.output}/summary.md")


def run():
    cli.run_app(main, required=["model_dir", "output"])


if __name__ == "__main__":
    run()
