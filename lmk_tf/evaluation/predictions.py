"""Held-out predictions with their uncertainty signals: one CSV row per image and landmark.

A k-fold run writes one file per fold as the fold finishes (small enough to
commit), so the pooled figures and the uncertainty calibration can combine
folds trained in different sessions without the models.
"""

from __future__ import annotations

import csv
import os
import time

import numpy as np

from lmk_tf.errors import ConfigError
from lmk_tf.method.uncertainty import FEATURES

COLUMNS = ("image", "landmark", "truth_index", "pred_index", "error_mm", "confidence", "present",
           "expected_error_mm", "radius90_mm", *FEATURES)


def predict_held_out(model, samples, names, *, log=None) -> list[dict]:
    """Rows for `samples` (each with .load(), .points, .image_id) from a LocalModel's diagnostics."""
    from lmk_tf.export.contract import DIAGNOSTICS_SIGNATURE

    rows, t0 = [], time.time()
    for n, sample in enumerate(samples):
        image = sample.load()
        out = model.predict({"image": np.asarray(image.array, np.float32)[..., None],
                             "spacing": np.asarray(image.spacing, np.float32)}, signature=DIAGNOSTICS_SIGNATURE)
        truth = np.asarray(sample.points, np.float64)
        err = np.linalg.norm((out["landmarks_index"] - truth) * np.asarray(image.spacing), axis=1)
        for i, name in enumerate(names):
            rows.append({
                "image": sample.image_id, "landmark": name,
                "truth_index": " ".join(f"{v:.3f}" for v in truth[i]),
                "pred_index": " ".join(f"{v:.3f}" for v in out["landmarks_index"][i]),
                "error_mm": float(err[i]), "confidence": float(out["confidence"][i]),
                "present": int(bool(out["present"][i])),
                "expected_error_mm": float(out["expected_error_mm"][i]), "radius90_mm": float(out["radius90_mm"][i]),
                **{f: float(out[f][i]) for f in FEATURES},
            })
        if log:
            print(f"  predicted {n + 1}/{len(samples)} held-out images ({time.time() - t0:.0f}s)", file=log, flush=True)
    return rows


def write_predictions_csv(path, rows: list[dict]) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.5g}" if isinstance(v, float) else v) for k, v in row.items()})
    os.replace(tmp, path)
    return path


def read_predictions_csv(path) -> dict[str, np.ndarray]:
    """Columns as arrays: image, landmark (str), error_mm, each feature, ... (float).

    A signal added to FEATURES after a file was written is simply absent from what it returns.
    """
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such predictions file") from None
    required = set(COLUMNS) - set(FEATURES)
    if not rows or required - set(rows[0]):
        missing = sorted(required - set(rows[0])) if rows else "every row"
        raise ConfigError(f"{path}: not a predictions file (missing {missing})")
    out = {}
    for col in (c for c in COLUMNS if c in rows[0]):
        values = [r[col] for r in rows]
        if col in ("image", "landmark"):
            out[col] = np.array(values)
            continue
        try:
            out[col] = (np.array([[float(v) for v in s.split()] for s in values]) if col.endswith("_index")
                        else np.array(values, np.float64))
        except (ValueError, AttributeError) as e:  # an empty or cut-short field
            raise ConfigError(f"{path}: column {col} holds a value that is not a number ({e})") from None
    return out
