"""Fits a model's uncertainty calibration on validation images.

`expected_error_mm` and `radius90_mm` are the graph's raw uncertainty signals
mapped to millimetres (`lmk_tf.method.uncertainty`). The map must be fitted on
images the model never trained on and that no reported figure is measured on:
a validation set (for synthetic data: a seed apart from the training and test
seeds), or, for the ISBI recipe, the out-of-fold predictions of the k-fold
models (benchmarks/isbi2015_calibrate.py).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence

import numpy as np

from lmk_tf.data.sources import Sample
from lmk_tf.errors import ConfigError
from lmk_tf.evaluation.predictions import predict_held_out
from lmk_tf.export.savedmodel import export
from lmk_tf.method.uncertainty import FEATURES, fit_calibration
from lmk_tf.serving.local import LocalModel

MIN_PREDICTIONS = 20


def fit_on_samples(model: LocalModel, samples: Sequence[Sample], names: Sequence[str], *, log=None) -> dict:
    """The calibration fitted on `model`'s predictions of `samples` (raw signals, so any calibration
    the model already carries plays no part)."""
    names = list(names)
    rows = predict_held_out(model, list(samples), names, log=log)
    # Landmarks outside the image (no truth) or reported absent have no error to learn from.
    kept = [r for r in rows if np.isfinite(r["error_mm"]) and r["present"]]
    if len(kept) < MIN_PREDICTIONS:
        raise ConfigError(f"calibration needs at least {MIN_PREDICTIONS} landmarks found with a known truth; "
                          f"the {len(samples)} validation images gave {len(kept)}: give more images")
    features = np.array([[r[f] for f in FEATURES] for r in kept])
    landmark = np.array([names.index(r["landmark"]) for r in kept])
    errors = np.array([r["error_mm"] for r in kept])
    return fit_calibration(features, landmark, errors, len(names),
                           fitted_on=f"{len(kept)} landmarks of {len(samples)} validation images")


def fit_for_model_dir(model_dir: str, samples: Sequence[Sample], names: Sequence[str], *,
                      presence_threshold: float | None = None, local_iterations: int | None = None,
                      log=None) -> dict:
    """The calibration of the trained stages in `model_dir`, fitted on `samples`.

    The stages are exported to a temporary SavedModel first and that answers,
    so the signals are exactly those the served graph computes.
    """
    with tempfile.TemporaryDirectory(prefix="lmk-calibrate-") as tmp:
        path = export(model_dir, os.path.join(tmp, "uncalibrated"), presence_threshold=presence_threshold,
                      local_iterations=local_iterations)
        return fit_on_samples(LocalModel(path), samples, names, log=log)


def read_calibration(path: str, names: Sequence[str]) -> dict:
    """A calibration JSON (benchmarks/isbi2015_calibrate.py --output), checked against the model's landmarks."""
    try:
        with open(path) as f:
            calibration = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such calibration file") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(calibration, dict) or not {"weights", "intercepts", "q90"} <= set(calibration):
        raise ConfigError(f"{path}: not a calibration (it needs weights, intercepts and q90)")
    if calibration.get("landmark_names", list(names)) != list(names):
        raise ConfigError(f"{path}: calibrated for other landmarks than the model's")
    if len(calibration["intercepts"]) != len(names):
        raise ConfigError(f"{path}: {len(calibration['intercepts'])} intercepts for {len(names)} landmarks")
    return {k: v for k, v in calibration.items() if k != "landmark_names"}
