"""Pooled held-out accuracy over the folds of the ISBI 2015 recipe.

  make isbi2015-kfold DATA=../shared/data/isbi2015     # trains folds 0-4, then runs this
  .venv/bin/python benchmarks/isbi2015_folds.py --predictions=docs/isbi2015/kfold
  .venv/bin/python benchmarks/isbi2015_folds.py \
      --reports=build/isbi2015/fold0/report/isbi2015,build/isbi2015/fold1/report/isbi2015

Reads the held-out predictions of each fold (`fold<k>.csv`, committed as each
fold finishes) or the errors.csv of fold reports, and prints one line per
fold and one for all held-out images pooled, with the count of landmarks
more than 10 mm off and the largest error. Every image is held out by exactly one
fold, so the pooled figure over all five folds covers the 150 images once.
The last line is `pooled_mre_mm=<value> sdr2_pct=<value> images=<n> folds=<k>`.
"""

import glob
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lmk_tf.errors import LmkError
from lmk_tf.evaluation.metrics import format_pooled, format_summary, read_errors_csv, summarize

flags.DEFINE_list("reports", None, "Report directories of held-out folds (each with errors.csv).")
flags.DEFINE_string("predictions", None, "Directory of fold<k>.csv held-out predictions (instead of --reports).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import numpy as np

    if bool(FLAGS.reports) == bool(FLAGS.predictions):
        raise SystemExit("isbi2015_folds: give --reports or --predictions, exactly one")
    if FLAGS.predictions:
        sources = sorted(glob.glob(os.path.join(FLAGS.predictions, "fold*.csv")))
        if not sources:
            raise SystemExit(f"isbi2015_folds: no fold*.csv in {FLAGS.predictions} (run make isbi2015-fold K=0)")
    else:
        sources = [os.path.join(r, "errors.csv") for r in FLAGS.reports]
    all_errors, all_ids, names = [], [], None
    for path in sources:
        if not os.path.exists(path):
            raise SystemExit(f"isbi2015_folds: {path} not found (train and evaluate that fold first)")
        try:
            ids, fold_names, errors = read_fold(path, from_predictions=bool(FLAGS.predictions))
        except LmkError as e:
            raise SystemExit(f"isbi2015_folds: {e}") from None
        if names is not None and fold_names != names:
            raise SystemExit(f"isbi2015_folds: {path} has other landmarks than the first report")
        names = fold_names
        overlap = set(ids) & set(all_ids)
        if overlap:
            raise SystemExit(f"isbi2015_folds: {path} repeats held-out images {sorted(overlap)[:3]}")
        all_ids += ids
        all_errors.append(errors)
        print(f"{path}: {format_summary(summarize(errors, names))}")
    every = np.concatenate(all_errors)
    print(f"pooled: {format_summary(summarize(every, names), per_landmark=True)}")
    print(format_pooled(every, names, len(sources)))


def read_fold(path, *, from_predictions):
    """(image ids, landmark names, errors [images, L]) of one fold's file."""
    import numpy as np

    if not from_predictions:
        return read_errors_csv(path)
    from lmk_tf.evaluation.predictions import read_predictions_csv

    p = read_predictions_csv(path)
    ids = list(dict.fromkeys(p["image"]))
    names = list(dict.fromkeys(p["landmark"]))
    errors = np.full((len(ids), len(names)), np.nan)
    for image, name, err in zip(p["image"], p["landmark"], p["error_mm"]):
        errors[ids.index(image), names.index(name)] = err
    return ids, names, errors


if __name__ == "__main__":
    app.run(main)
