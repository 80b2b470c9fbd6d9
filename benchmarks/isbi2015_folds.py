"""Pooled held-out accuracy over the folds of the ISBI 2015 recipe.

  make isbi2015-kfold DATA=../shared/data/isbi2015     # trains folds 0-4, then runs this
  .venv/bin/python benchmarks/isbi2015_folds.py \
      --reports=build/isbi2015/fold0/report/isbi2015,build/isbi2015/fold1/report/isbi2015

Reads the errors.csv each held-out fold's report holds (written by
`pipelines.isbi2015 --fold=K --report=DIR`) and prints one line per fold and
one for all held-out images pooled. Every image is held out by exactly one
fold, so the pooled figure over all five folds covers the 150 images once.
The last line is `pooled_mre_mm=<value> sdr2_pct=<value> images=<n> folds=<k>`.
"""

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lmk_tf.errors import LmkError
from lmk_tf.evaluation.metrics import format_summary, read_errors_csv, summarize

flags.DEFINE_list("reports", None, "Report directories of held-out folds (each with errors.csv).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import numpy as np

    all_errors, all_ids, names = [], [], None
    for report in FLAGS.reports:
        path = os.path.join(report, "errors.csv")
        if not os.path.exists(path):
            raise SystemExit(f"isbi2015_folds: {path} not found (train and evaluate that fold first)")
        try:
            ids, fold_names, errors = read_errors_csv(path)
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
        print(f"{report}: {format_summary(summarize(errors, names))}")
    pooled = summarize(np.concatenate(all_errors), names)
    print(f"pooled: {format_summary(pooled, per_landmark=True)}")
    o = pooled["overall"]
    print(f"pooled_mre_mm={o['mre']:.3f} sdr2_pct={o['sdr'][2.0]:.1f} images={pooled['n_images']} "
          f"folds={len(FLAGS.reports)}")


if __name__ == "__main__":
    flags.mark_flag_as_required("reports")
    app.run(main)
