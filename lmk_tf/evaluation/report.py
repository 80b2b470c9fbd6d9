"""Runs an exported model over held-out images and writes the error report.

The model is the SavedModel as served, called in-process through
`lmk_tf.serving.local.LocalModel` (the signature and request validation that
lmk-serve and TF Serving apply), so the figures are those of what is deployed.
Errors are radial distances in mm between predicted and true positions (pixel
index times spacing). Outputs in `out_dir`: errors.csv (image x landmark),
summary.md (per-landmark table), errors_boxplot.png, sdr_curve.png and
overlays of the worst images, plus summary.json for machines.

A model that predicts its own error (`expected_error_mm`, `radius90_mm`) is
also judged on that, over the landmarks found in both truth and prediction:
uncertainty.md (Spearman, AUROC, radius90 coverage, calibration bins,
risk-coverage), uncertainty.csv (one row per such landmark), calibration.png,
risk_coverage.png, and summary["uncertainty"]. For an older model that does
not, uncertainty.md is the one line saying so.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from lmk_tf.data.sources import Sample
from lmk_tf.errors import ConfigError, ModelError
from lmk_tf.evaluation import metrics as evaluation
from lmk_tf.evaluation import plots
from lmk_tf.evaluation.uncertainty import summarize_uncertainty
from lmk_tf.export.contract import UNCERTAINTY_OUTPUTS
from lmk_tf.serving.local import LocalModel

# Written only with a predicted error; removed otherwise, so that a report rewritten in
# place for an older model keeps none of an earlier model's.
UNCERTAINTY_FILES = ("uncertainty.csv", "calibration.png", "risk_coverage.png")


def predict_samples(model: LocalModel, samples: list[Sample], *, log=sys.stdout):
    """(pred_index [N, L, ndim], present [N, L], spacings [N, ndim], seconds per image, predicted error).

    The predicted error is {"expected_error_mm": [N, L], "radius90_mm": [N, L]}, or {} for a
    model exported before it had these outputs.
    """
    preds, present, spacings, predicted, t0 = [], [], [], [], time.time()
    for i, sample in enumerate(samples):
        image = sample.load()
        out = model.predict({"image": np.asarray(image.array, np.float32)[..., np.newaxis],
                             "spacing": np.asarray(image.spacing, np.float32)})
        preds.append(out["landmarks_index"])
        present.append(out["present"])
        spacings.append(image.spacing)
        predicted.append(_predicted_error(model, out))
        if log and (i + 1) % 10 == 0:
            print(f"  predicted {i + 1}/{len(samples)} images ({time.time() - t0:.0f}s)", file=log, flush=True)
    sec = (time.time() - t0) / max(len(samples), 1)
    return np.array(preds), np.array(present), np.array(spacings), sec, _stack_predicted(model, predicted)


def _predicted_error(model: LocalModel, out: dict) -> tuple | None:
    """(expected_error_mm [L], radius90_mm [L]) of one answer, None if it has neither."""
    have = [k for k in UNCERTAINTY_OUTPUTS if k in out]
    if not have:
        return None
    if len(have) < len(UNCERTAINTY_OUTPUTS):
        lacking = [k for k in UNCERTAINTY_OUTPUTS if k not in out]
        raise ModelError(f"{model.path}: the model answers {', '.join(have)} without {', '.join(lacking)}; "
                         f"the contract has {' and '.join(UNCERTAINTY_OUTPUTS)} together or neither")
    return tuple(np.asarray(out[k], np.float64) for k in UNCERTAINTY_OUTPUTS)


def _stack_predicted(model: LocalModel, predicted: list) -> dict[str, np.ndarray]:
    if all(p is None for p in predicted):
        return {}
    if any(p is None for p in predicted):
        raise ModelError(f"{model.path}: the model answered {UNCERTAINTY_OUTPUTS[0]} for some images only")
    return {k: np.array([p[j] for p in predicted]) for j, k in enumerate(UNCERTAINTY_OUTPUTS)}


def check_landmarks(model: LocalModel, names: list[str]):
    """The model must find the landmarks the images are annotated with, in that order."""
    served = model.landmark_names
    if served is None:
        return
    if len(served) != len(names):
        raise ConfigError(f"{model.path}: the model finds {len(served)} landmarks but the images are "
                          f"annotated with {len(names)}")
    for i, (a, b) in enumerate(zip(served, names)):
        if a != b:
            raise ConfigError(f"{model.path}: the model's landmark {i} is {a!r} but the images' is {b!r}")


def evaluate(model: LocalModel, samples: list[Sample], names: list[str], out_dir: str, *,
             overlays: int = 5, log=sys.stdout) -> dict:
    """Predicts every sample with `model`, writes the report into `out_dir`, returns the summary."""
    if not samples:
        raise ConfigError("no images to evaluate (is the held-out fold empty?)")
    check_landmarks(model, names)
    os.makedirs(out_dir, exist_ok=True)
    pred_index, present, spacings, sec, predicted = predict_samples(model, samples, log=log)
    truth_index = np.array([s.points for s in samples])
    pred_mm = pred_index * spacings[:, None, :]
    true_mm = truth_index * spacings[:, None, :]
    errors = evaluation.radial_errors(pred_mm, true_mm, pred_present=present)
    summary = evaluation.summarize(errors, names, predicted_present=present)
    ids = [s.image_id for s in samples]

    second = None
    second_errors = None
    if all(len(s.annotators) >= 2 for s in samples):
        a0 = np.array([s.annotators[0] for s in samples]) * spacings[:, None, :]
        a1 = np.array([s.annotators[1] for s in samples]) * spacings[:, None, :]
        second_errors = evaluation.radial_errors(a1, a0)
        second = evaluation.summarize(second_errors, names)

    evaluation.write_errors_csv(os.path.join(out_dir, "errors.csv"), ids, names, errors)
    evaluation.write_markdown_table(os.path.join(out_dir, "summary.md"), summary, second)
    plots.plot_error_boxplot(errors, names, os.path.join(out_dir, "errors_boxplot.png"))
    plots.plot_sdr_curve(errors, os.path.join(out_dir, "sdr_curve.png"), second_annotator_errors=second_errors)
    if overlays:
        plots.save_worst_overlays(
            os.path.join(out_dir, "worst"), lambda i: samples[i].load(), pred_index, errors,
            truth_index=truth_index, image_ids=ids, names=names, present=present, k=overlays,
        )
    summary["seconds_per_image"] = sec
    if second is not None:
        summary["second_annotator"] = second
    uncertainty = write_uncertainty(model, out_dir, ids, names, errors, predicted, log=log)
    if uncertainty is not None:
        summary["uncertainty"] = uncertainty
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=_jsonable)
    return summary


def write_uncertainty(model: LocalModel, out_dir: str, ids: list[str], names: list[str], errors: np.ndarray,
                      predicted: dict[str, np.ndarray], *, log=sys.stdout) -> dict | None:
    """The predicted error's part of the report; its summary, or None when there is nothing to judge."""
    for name in UNCERTAINTY_FILES:
        if os.path.exists(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))
    found = np.isfinite(errors)
    if not predicted:
        return _no_uncertainty(out_dir, f"{model.path} predicts no error of its own (it has no "
                               f"{' or '.join(UNCERTAINTY_OUTPUTS)} output: exported before they were added)", log)
    if not found.any():
        return _no_uncertainty(out_dir, "no landmark was found in both truth and prediction, so the "
                               "predicted error has no actual error to be compared with", log)
    expected, radius90 = predicted["expected_error_mm"], predicted["radius90_mm"]
    _check_finite(model, ids, names, found, expected, radius90)
    uncertainty = summarize_uncertainty(expected[found], radius90[found], errors[found])
    evaluation.write_uncertainty_csv(os.path.join(out_dir, "uncertainty.csv"), ids, names, errors, expected,
                                     radius90)
    plots.plot_calibration(expected[found], errors[found], os.path.join(out_dir, "calibration.png"))
    plots.plot_risk_coverage(expected[found], errors[found], os.path.join(out_dir, "risk_coverage.png"))
    with open(os.path.join(out_dir, "uncertainty.md"), "w", encoding="utf-8") as f:
        f.write(evaluation.format_uncertainty_markdown(uncertainty))
    return uncertainty


def _no_uncertainty(out_dir: str, reason: str, log) -> None:
    with open(os.path.join(out_dir, "uncertainty.md"), "w", encoding="utf-8") as f:
        f.write(f"No evaluation of the predicted error: {reason}.\n")
    if log:
        print(f"  no evaluation of the predicted error: {reason}", file=log, flush=True)
    return None


def _check_finite(model, ids, names, found, expected, radius90):
    """A found landmark must have a predicted error: NaN would rank as the largest and skew every figure."""
    bad = found & ~(np.isfinite(expected) & np.isfinite(radius90))
    if bad.any():
        i, l = (int(v[0]) for v in np.nonzero(bad))
        raise ModelError(f"{model.path}: predicted error of {names[l]!r} on image {ids[i]!r} is not finite "
                         f"(expected_error_mm {expected[i, l]}, radius90_mm {radius90[i, l]})")


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)
