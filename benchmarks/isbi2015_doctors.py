r"""The held-out predictions against each ISBI 2015 doctor, and the doctors against each other.

  .venv/bin/python benchmarks/isbi2015_doctors.py --data=../shared/data/isbi2015 \
      --predictions=docs/isbi2015/kfold

The recipe's truth is the mean of the two doctors' points. Where they disagree,
that mean is itself uncertain, and an error against it is partly the truth's:
this prints how far apart the doctors are (pooled and per landmark), the
model's MRE and SDR at 2 mm against each doctor and against their mean, how
many of the errors > 4 mm fall where the doctors are > 4 mm apart or lie within
2 mm of one doctor, and how well the doctors' distance, an oracle the model
never sees, would rank the errors (Spearman, AUROC > 4 mm): a yardstick for the
predicted error of #10. With two or more fold files it also fits the predicted
error's calibration map nested, as isbi2015_calibrate.py does (each fold's rows
scored by a map fitted on the other folds), on the model's signals alone and
with the doctors' distance as one more signal: how much a predicted error could
gain if it knew where the truth itself is uncertain. The last line is key=value
figures.
"""

import glob
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_string("data", "../shared/data/isbi2015", "The isbi2015 directory (senior.csv, junior.csv).")
flags.DEFINE_string("predictions", "docs/isbi2015/kfold", "Directory of fold<k>.csv held-out predictions.")
flags.DEFINE_float("spacing", 0.1, "mm per pixel of the images.")
FLAGS = flags.FLAGS


def read_doctors(data_dir):
    """{doctor: {image id: Landmarks}} of senior.csv and junior.csv."""
    from lmk_tf.io.landmark_tables import read_landmark_table

    return {who: read_landmark_table(os.path.join(data_dir, f"{who}.csv")) for who in ("senior", "junior")}


def doctors_points(doctors, images, landmarks):
    """{doctor: [N, ndim] index points} for the prediction rows (image, landmark)."""
    out = {}
    for who, table in doctors.items():
        points = []
        for image, landmark in zip(images, landmarks):
            if image not in table:
                raise SystemExit(f"isbi2015_doctors: image {image} of the predictions is not in {who}.csv")
            marks = table[image]
            if landmark not in marks.names:
                raise SystemExit(f"isbi2015_doctors: landmark {landmark} of the predictions is not in {who}.csv")
            points.append(marks.points[marks.names.index(landmark)])
        out[who] = points
    return out


def nested_ranking(fold_of, landmark, error, columns):
    """(Spearman, AUROC > 4 mm) of the predicted error from `columns` ({name: [N]} signals), each
    fold's rows scored by the calibration map fitted on the other folds' rows."""
    import numpy as np

    from lmk_tf.evaluation.uncertainty import auroc, spearman
    from lmk_tf.method.uncertainty import nested_predictions

    names = list(dict.fromkeys(landmark))
    index = np.array([names.index(n) for n in landmark])
    expected, _ = nested_predictions(np.stack(list(columns.values()), axis=1), index, error, fold_of, len(names),
                                     feature_names=list(columns))
    return spearman(expected, error), auroc(expected, error > 4.0)


def main(argv):
    del argv
    import numpy as np

    from lmk_tf import cli

    cli.import_tensorflow_quietly()  # the predictions' reader imports it
    from lmk_tf.errors import LmkError
    from lmk_tf.evaluation.predictions import read_predictions_csv
    from lmk_tf.evaluation.uncertainty import auroc, spearman
    from lmk_tf.method.uncertainty import FEATURES

    paths = sorted(glob.glob(os.path.join(FLAGS.predictions, "fold*.csv")))
    if not paths:
        raise SystemExit(f"isbi2015_doctors: no fold*.csv in {FLAGS.predictions}")
    try:
        parts = [read_predictions_csv(p) for p in paths]
        doctors = read_doctors(FLAGS.data)
    except (LmkError, OSError) as e:
        raise SystemExit(f"isbi2015_doctors: {e}") from None
    rows = {k: np.concatenate([p[k] for p in parts]) for k in ("image", "landmark", "pred_index", "error_mm")}
    signals = [f for f in FEATURES if all(f in p for p in parts)]
    rows.update({f: np.concatenate([p[f] for p in parts]) for f in signals})
    rows["fold"] = np.concatenate([np.full(len(p["error_mm"]), k) for k, p in enumerate(parts)])
    kept = np.isfinite(rows["error_mm"])
    rows = {k: v[kept] for k, v in rows.items()}
    points = {who: np.asarray(v, np.float64) for who, v in doctors_points(doctors, rows["image"],
                                                                           rows["landmark"]).items()}

    def mm(a, b):
        return np.linalg.norm((a - b) * FLAGS.spacing, axis=-1)

    apart = mm(points["senior"], points["junior"])
    error = rows["error_mm"]
    against = {who: mm(rows["pred_index"], p) for who, p in points.items()}
    nearest = np.minimum(against["senior"], against["junior"])
    big = error > 4.0
    print(f"{len(paths)} fold file(s), {len(error)} landmarks of {len(set(rows['image']))} images")
    print(f"the doctors apart: mean {apart.mean():.2f} mm, median {np.median(apart):.2f}; "
          f"> 4 mm for {(apart > 4).sum()} landmarks")
    for who, e in (("mean of the doctors (the truth)", error), *against.items()):
        print(f"model against the {who}: MRE {e.mean():.3f} mm, SDR 2 mm {100 * (e <= 2).mean():.1f} %")
    print(f"errors > 4 mm: {big.sum()}; where the doctors are > 4 mm apart: {(apart[big] > 4).sum()}; "
          f"within 2 mm of one doctor: {(nearest[big] <= 2).sum()}")
    oracle_rho, oracle_auc = spearman(apart, error), auroc(apart, big)
    print(f"the doctors' distance as a predicted error (an oracle): Spearman {oracle_rho:.3f}, "
          f"AUROC > 4 mm {oracle_auc:.3f}")
    nested = ""
    if len(parts) > 1:
        own = nested_ranking(rows["fold"], rows["landmark"], error, {f: rows[f] for f in signals})
        told = nested_ranking(rows["fold"], rows["landmark"], error,
                              {**{f: rows[f] for f in signals}, "doctors_apart_mm": apart})
        print(f"the predicted error, calibrated nested over the {len(parts)} fold files: from the model's signals "
              f"Spearman {own[0]:.3f}, AUROC > 4 mm {own[1]:.3f}; with the doctors' distance as one more signal "
              f"(an oracle) Spearman {told[0]:.3f}, AUROC > 4 mm {told[1]:.3f}")
        nested = (f" signals_spearman={own[0]:.3f} signals_auroc4={own[1]:.3f}"
                  f" with_doctors_spearman={told[0]:.3f} with_doctors_auroc4={told[1]:.3f}")
    print(f"\n{'landmark':24s}{'model mm':>10s}{'SDR 2 mm':>10s}{'doctors apart':>15s}")
    names = list(dict.fromkeys(rows["landmark"]))
    for name in sorted(names, key=lambda n: -error[rows["landmark"] == n].mean()):
        m = rows["landmark"] == name
        print(f"{name:24s}{error[m].mean():10.3f}{100 * (error[m] <= 2).mean():9.1f}%{apart[m].mean():15.2f}")
    print(f"doctors_apart_mm={apart.mean():.3f} model_mm={error.mean():.3f} "
          f"senior_mm={against['senior'].mean():.3f} junior_mm={against['junior'].mean():.3f} "
          f"over4mm={big.sum()} over4mm_doctors_apart={(apart[big] > 4).sum()} "
          f"oracle_spearman={oracle_rho:.3f} oracle_auroc4={oracle_auc:.3f}{nested}")


if __name__ == "__main__":
    app.run(main)
