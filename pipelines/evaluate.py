"""lmk-evaluate: errors of a trained global-to-local model on held-out images.

  lmk-evaluate --model_dir=build/model --synthetic=50 --seed=7 --output=build/eval
  lmk-evaluate --model_dir=build/isbi --images=DIR --landmarks=senior.csv,junior.csv \
      --spacing=0.1 --fold=0 --output=docs/isbi2015

With --fold, only that held-out fold is evaluated. Writes errors.csv,
summary.md, summary.json, errors_boxplot.png, sdr_curve.png, worst/*.png.
"""

from absl import flags

from lmk_tf import cli

cli.import_tensorflow_quietly()
from lmk_tf.evaluation.metrics import format_summary  # noqa: E402
from lmk_tf.evaluation.report import evaluate  # noqa: E402
from lmk_tf.method.model_dir import Predictor, assemble  # noqa: E402
from pipelines import source_flags  # noqa: E402

flags.DEFINE_string("model_dir", None, "Directory with the trained global/ and local/ stages.")
flags.DEFINE_string("output", None, "Directory for the report.")
flags.DEFINE_integer("overlays", 5, "Overlay pictures of the worst images.", lower_bound=0)
flags.DEFINE_float("presence_threshold", 0.5, "Global peak probability for 'present'.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    samples, names = source_flags.load_source()
    if FLAGS.fold >= 0:
        _, samples = source_flags.split_source(samples)
    predictor = Predictor(assemble(FLAGS.model_dir, presence_threshold=FLAGS.presence_threshold))
    print(f"== evaluating on {len(samples)} images -> {FLAGS.output}", flush=True)
    summary = evaluate(predictor, samples, names, FLAGS.output, overlays=FLAGS.overlays)
    print(format_summary(summary, per_landmark=True))
    print(f"{summary['seconds_per_image'] * 1000:.0f} ms per image; report: {FLAGS.output}/summary.md")


def run():
    for name in ("model_dir", "output"):
        flags.mark_flag_as_required(name)
    cli.run_app(main)


if __name__ == "__main__":
    run()
