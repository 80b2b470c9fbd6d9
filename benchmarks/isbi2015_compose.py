r"""Held-out accuracy of a local ensemble put together from nets the k-fold runs already trained.

  .venv/bin/python benchmarks/isbi2015_compose.py --data=../shared/data/isbi2015 \
      --add=build/ablation/narrow/models --drop_own_members --predictions=build/compose/narrow
  .venv/bin/python benchmarks/isbi2015_compose.py --data=../shared/data/isbi2015 \
      --global_shifts=0 --predictions=build/compose/no_shifts
  .venv/bin/python benchmarks/isbi2015_compose.py --data=../shared/data/isbi2015 \
      --member_weighting=inverse_variance --predictions=build/compose/inverse_variance

For each fold it takes the fold model (the newest version under
--fold_models/fold<k>): its global stage, its first local net and its other
local nets (unless --drop_own_members, or those --drop_member names). It adds the member that each --add
directory's fold<k> model gained (the models that
`isbi2015_stage_ablation.py --compose=add` exports: their last local net)
to the mean. The composite runs in this process, with the fold model's
inference settings (or --global_shifts, --member_weighting) and calibration; the CSVs hold the
raw signals too, for isbi2015_calibrate.py's nested fit. Nothing trains, so
choosing among nets already trained costs minutes, not hours.

With --export, each composite is also exported, as the next version under
<export>/fold<k>: the fold models of a recipe whose nets were all trained
already (then `make isbi2015-refresh` writes their CSVs as the recipe does).

It writes each fold's held-out predictions to --predictions/fold<k>.csv, as the
k-fold recipe writes them (so isbi2015_calibrate.py takes them), prints each
fold's MRE and, last, the pooled line of isbi2015_folds.py.
"""

import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lmk_tf.method.config import MEMBER_WEIGHTINGS  # after the path; imports no TensorFlow

flags.DEFINE_string("data", "../shared/data/isbi2015", "The isbi2015 directory (images/, senior.csv, junior.csv).")
flags.DEFINE_string("fold_models", "saved_models/isbi2015_kfold", "The k-fold recipe's fold models (fold<k>/<v>).")
flags.DEFINE_list("add", [], "Model directories (fold<k>/<v> under each) whose added local member joins the mean.")
flags.DEFINE_bool("drop_own_members", False, "Leave out the fold model's own local nets after the first.")
flags.DEFINE_multi_integer("drop_member", [], "Leave out this one of the fold model's own local nets (2 is the "
                           "first after the first net); repeat the flag for several.")
flags.DEFINE_integer("global_shifts", None, "Global passes on half-cell-shifted copies (0-3); default: the "
                     "fold model's.")
flags.DEFINE_enum("member_weighting", None, list(MEMBER_WEIGHTINGS), "How the local nets' "
                  "estimates are combined; default: the fold model's.")
flags.DEFINE_string("predictions", None, "Directory for the composite's fold<k>.csv held-out predictions.")
flags.DEFINE_string("export", None, "Also export each fold's composite, as the next version under "
                    "<export>/fold<k> (--fold_models itself: it becomes the fold models' newest).")
flags.DEFINE_list("folds", ["0", "1", "2", "3", "4"], "Folds to run.")
flags.DEFINE_integer("num_folds", 5, "K of the recipe's K-fold split.")
flags.DEFINE_integer("split_seed", 0, "Seed of the recipe's fold split.")
flags.DEFINE_float("spacing", 0.1, "mm per pixel of the images.")
FLAGS = flags.FLAGS


def rebuilt(base, hint=""):
    """The `GlobalToLocal` of the newest version under `base`; a one-line refusal when there is none."""
    from lmk_tf.export.layout import list_versions
    from lmk_tf.export.reload import rebuild

    if not list_versions(base):
        raise SystemExit(f"isbi2015_compose: no exported model in {base}{hint}")
    return rebuild(base, calibration=None, global_shifts=FLAGS.global_shifts,
                   member_weighting=FLAGS.member_weighting)


def added_member(models_dir, fold):
    """(net, config dict) of the last local net of `models_dir`/fold<k>'s newest version."""
    base = os.path.join(models_dir, f"fold{fold}")
    model = rebuilt(base)
    if not model.extra_local_nets:
        raise SystemExit(f"isbi2015_compose: {base} has one local net only; nothing was added to it")
    return model.extra_local_nets[-1], model.extra_local_configs[-1]


def compose(fold):
    from lmk_tf.export.reload import add_local_member, without_local_members

    model = rebuilt(os.path.join(FLAGS.fold_models, f"fold{fold}"), f" (train fold {fold} first)")
    if FLAGS.drop_own_members or FLAGS.drop_member:
        try:
            model = without_local_members(model, None if FLAGS.drop_own_members else FLAGS.drop_member)
        except ValueError as e:
            raise SystemExit(f"isbi2015_compose: --drop_member: {e}") from None
    for directory in FLAGS.add:
        model = add_local_member(model, *added_member(directory, fold))
    return model


def dropped():
    """What the composite leaves out of the fold model, for the export's description."""
    if FLAGS.drop_own_members:
        return " without its members"
    if FLAGS.drop_member:
        return f" without its local net(s) {', '.join(map(str, FLAGS.drop_member))}"
    return ""


class InProcess:
    """A composed graph answering as `LocalModel.predict` does, without exporting it first."""

    def __init__(self, model):
        import tensorflow as tf

        self._tf = tf
        self._call = tf.function(lambda image, spacing: model({"image": image, "spacing": spacing}),
                                 reduce_retracing=True)

    def predict(self, inputs, signature=None):
        del signature  # the graph's outputs hold the diagnostics' signals too
        out = self._call(self._tf.constant(inputs["image"]), self._tf.constant(inputs["spacing"]))
        return {k: v.numpy() for k, v in out.items()}


def main(argv):
    del argv
    if not FLAGS.predictions:
        raise SystemExit("isbi2015_compose: give --predictions (a directory for the fold<k>.csv files)")
    if FLAGS.global_shifts is not None and FLAGS.global_shifts not in (0, 1, 2, 3):
        raise SystemExit(f"isbi2015_compose: --global_shifts must be 0, 1, 2 or 3, got {FLAGS.global_shifts}")
    from lmk_tf import cli

    cli.import_tensorflow_quietly()
    cli.quiet_logs()
    import numpy as np

    from lmk_tf.data import sources
    from lmk_tf.evaluation.metrics import format_pooled
    from lmk_tf.evaluation.predictions import predict_held_out, write_predictions_csv

    d = FLAGS.data
    samples, names = sources.table_source(
        os.path.join(d, "images"), [os.path.join(d, "senior.csv"), os.path.join(d, "junior.csv")],
        spacing=FLAGS.spacing, combine="mean")
    errors = []
    for fold in (int(f) for f in FLAGS.folds):
        t0 = time.time()
        model = compose(fold)
        _, held_out = sources.split(samples, fold=fold, num_folds=FLAGS.num_folds, seed=FLAGS.split_seed)
        if FLAGS.export:
            from lmk_tf.export.savedmodel import export_pipeline, next_version

            base = os.path.join(FLAGS.export, f"fold{fold}")
            added = ", ".join(FLAGS.add) or "nothing"
            extra = {"composed": f"fold model {FLAGS.fold_models}/fold{fold}"
                                 f"{dropped()}; local members "
                                 f"added from {added}",
                     "held_out_fold": f"{fold} of {FLAGS.num_folds} (split seed {FLAGS.split_seed})"}
            path = export_pipeline(model, base, version=next_version(base), warmup_shape=(480, 388),
                                   warmup_spacing=[FLAGS.spacing, FLAGS.spacing], extra_info=extra)
            print(f"fold {fold}: exported {path}", flush=True)
        rows = predict_held_out(InProcess(model), held_out, names)
        path = write_predictions_csv(os.path.join(FLAGS.predictions, f"fold{fold}.csv"), rows)
        fold_errors = np.reshape([r["error_mm"] for r in rows], [len(held_out), len(names)])
        errors.append(fold_errors)
        print(f"fold {fold}: {1 + len(model.extra_local_nets)} local net(s), "
              f"global_shifts={model.global_shifts}, {model.member_weighting}: held-out MRE "
              f"{np.nanmean(fold_errors):.3f} mm over {len(held_out)} images; {path} ({time.time() - t0:.0f}s)",
              flush=True)
    print(format_pooled(np.concatenate(errors), names, len(errors)))


if __name__ == "__main__":
    app.run(main)
