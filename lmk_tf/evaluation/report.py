"""Runs an exported model over held-out images and writes the error report.

The model is the SavedModel as served, called in-process through
`lmk_tf.serving.local.LocalModel` (the signature and request validation that
lmk-serve and TF Serving apply), so the figures are those of what is deployed.
Errors are radial distances in mm between predicted and true positions (pixel
index times spacing). Outputs in `out_dir`: errors.csv (image x landmark),
summary.md (per-landmark table), errors_boxplot.png, sdr_curve.png and
overlays of the worst images, plus summary.json for machines.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from lmk_tf.data.sources import Sample
from lmk_tf.errors import ConfigError
from lmk_tf.evaluation import metrics as evaluation
from lmk_tf.evaluation import plots
from lmk_tf.serving.local import LocalModel


def predict_samples(model: LocalModel, samples: list[Sample], *, log=sys.stdout):
    """(pred_index [N, L, ndim], present [N, L], spacings [N, ndim], seconds per image)."""
    preds, present, spacings, t0 = [], [], [], time.time()
    for i, sample in enumerate(samples):
        image = sample.load()
        out = model.predict({"image": np.asarray(image.array, np.float32)[..., np.newaxis],
                             "spacing": np.asarray(image.spacing, np.float32)})
        preds.append(out["landmarks_index"])
        present.append(out["present"])
        spacings.append(image.spacing)
        if log and (i + 1) % 10 == 0:
            print(f"  predicted {i + 1}/{len(samples)} images ({time.time() - t0:.0f}s)", file=log, flush=True)
    return np.array(preds), np.array(present), np.array(spacings), (time.time() - t0) / max(len(samples), 1)


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
    pred_index, present, spacings, sec = predict_samples(model, samples, log=log)
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
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=_jsonable)
    return summary


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)
