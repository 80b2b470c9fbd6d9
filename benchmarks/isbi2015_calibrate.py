"""Calibrate and evaluate the predicted error of the ISBI 2015 model on out-of-fold predictions.

  .venv/bin/python benchmarks/isbi2015_calibrate.py --predictions=docs/isbi2015/kfold \
      --output=docs/isbi2015/calibration.json --plots=docs/isbi2015/kfold

Reads `fold<k>.csv` (held-out predictions with their uncertainty signals, one
row per image and landmark, written by the k-fold recipe as each fold ends).
Nested: the predictions of fold k are scored with a calibration fitted on the
other folds only, so no prediction is scored by a map fitted on it. Prints
Spearman(expected_error_mm, error), AUROC for errors > 2 and > 4 mm and the
coverage of radius90_mm, pooled, next to the same ranking figures for the
old `confidence`; then fits one calibration on all folds (what the exported
model carries) and writes it to --output. Last line:
`spearman=... auroc4=... coverage90=... folds=... n=...`.
"""

import glob
import json
import os
import re
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lmk_tf.evaluation import plots
from lmk_tf.evaluation.predictions import read_predictions_csv
from lmk_tf.evaluation.uncertainty import (
    format_review,
    format_uncertainty,
    review_thresholds,
    summarize_uncertainty,
)
from lmk_tf.method.uncertainty import FEATURES, fit_calibration, nested_predictions

flags.DEFINE_string("predictions", "docs/isbi2015/kfold", "Directory with fold<k>.csv files.")
flags.DEFINE_string("output", None, "Write the calibration fitted on all folds here (JSON).")
flags.DEFINE_string("plots", None, "Write calibration.png and risk_coverage.png here.")
FLAGS = flags.FLAGS


def load_folds(directory):
    paths = sorted(glob.glob(os.path.join(directory, "fold*.csv")))
    if len(paths) < 2:
        raise SystemExit(f"isbi2015_calibrate: {directory} has {len(paths)} fold<k>.csv files; "
                         "nested calibration needs at least 2")
    return {int(re.search(r"fold(\d+)\.csv$", p).group(1)): read_predictions_csv(p) for p in paths}


def rows(fold_data, names, features):
    x = np.stack([fold_data[f] for f in features], axis=1)
    lm = np.array([names.index(n) for n in fold_data["landmark"]])
    return x, lm, fold_data["error_mm"]


def stack(fold_list, names, features):
    """(features, landmark index, error) of several folds' rows, concatenated."""
    parts = [rows(d, names, features) for d in fold_list]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def main(argv):
    del argv
    folds = load_folds(FLAGS.predictions)
    names = list(dict.fromkeys(next(iter(folds.values()))["landmark"]))
    # A signal added since some fold's file was written is left out, not read as zeros.
    features = [f for f in FEATURES if all(f in d for d in folds.values())]
    lacking = [f for f in FEATURES if f not in features]
    if lacking:
        print(f"note: {lacking} missing from some fold<k>.csv (written before the signal existed); "
              f"calibrating on {features}")
    x, lm, errors = stack(list(folds.values()), names, features)
    fold_of = np.concatenate([np.full(len(d["error_mm"]), k) for k, d in folds.items()])
    confidence = np.concatenate([d["confidence"] for d in folds.values()])
    expected, radius = nested_predictions(x, lm, errors, fold_of, len(names), feature_names=features)
    for k in folds:
        mine = fold_of == k
        s = summarize_uncertainty(expected[mine], radius[mine], errors[mine])
        print(f"fold {k} (calibrated on the other {len(folds) - 1}): {format_uncertainty(s)}")
    pooled = summarize_uncertainty(expected, radius, errors)
    old = summarize_uncertainty(-confidence, np.full_like(errors, np.inf), errors)
    print(f"pooled, nested: {format_uncertainty(pooled)}")
    print(f"old confidence (ranking only): Spearman {old['spearman']:.3f}, AUROC >2 mm {old['auroc_2mm']:.3f}, "
          f">4 mm {old['auroc_4mm']:.3f}; share exactly 1.0: {100 * (confidence >= 1.0).mean():.0f} %")
    print("calibration (equal-count bins): " + ", ".join(
        f"{b['predicted_mm']:.2f}->{b['actual_mm']:.2f}" for b in pooled["calibration"]))
    print("risk-coverage: " + ", ".join(
        f"keep {100 * b['kept']:.0f}% MRE {b['mre_mm']:.2f} max {b['max_mm']:.1f}" for b in pooled["risk_coverage"]))
    print("what --review_mm would flag (nested):\n" + format_review(review_thresholds(expected, errors)))
    if FLAGS.plots:
        write_plots(FLAGS.plots, expected, errors)
    if FLAGS.output:
        cal = fit_calibration(x, lm, errors, len(names), feature_names=features,
                              fitted_on=f"out-of-fold predictions of folds {sorted(folds)} ({len(errors)} landmarks)")
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
        with open(FLAGS.output, "w") as f:
            json.dump({"landmark_names": names, **cal}, f, indent=2)
        print(f"calibration fitted on all {len(folds)} folds: {FLAGS.output}")
    print(f"spearman={pooled['spearman']:.3f} auroc4={pooled['auroc_4mm']:.3f} auroc2={pooled['auroc_2mm']:.3f} "
          f"coverage90={100 * pooled['coverage90']:.1f} folds={len(folds)} n={pooled['n']}")


def write_plots(directory, expected, errors):
    plots.plot_calibration(expected, errors, os.path.join(directory, "calibration.png"),
                           title="Calibration of expected_error_mm (out of fold)")
    plots.plot_risk_coverage(expected, errors, os.path.join(directory, "risk_coverage.png"))


if __name__ == "__main__":
    app.run(main)
