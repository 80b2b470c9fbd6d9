"""Landmark-localisation metrics and the reports made from them (numpy only).

Errors are kept as an [N images, L landmarks] float array with two special
values, so that one array carries everything a report needs:

* NaN: the landmark is not in the truth (not annotated, or outside the field
  of view); the case counts nowhere, except as a false detection when the
  model says the landmark is present.
* inf: the landmark is in the truth but the model said it is absent (or gave
  no position): a miss. It fails every SDR radius and is counted in `missed`,
  but is left out of the MRE, SD and median, which describe the positions the
  model did give.

Definitions (as in the ISBI 2015 challenge and Noothout et al. 2020): the
radial error is the Euclidean distance in mm; MRE is its mean, SD its standard
deviation (population, ddof=0); SDR at radius r is the percentage of
truly-present cases with error <= r.
"""

from __future__ import annotations

import csv
import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from lmk_tf.errors import ConfigError
from lmk_tf.evaluation.uncertainty import format_uncertainty

DEFAULT_THRESHOLDS_MM = (2.0, 2.5, 3.0, 4.0)
CSV_COLUMNS = ("image_id", "landmark", "error_mm", "status")
UNCERTAINTY_CSV_COLUMNS = ("image", "landmark", "error_mm", "expected_error_mm", "radius90_mm", "within_radius90")


def radial_errors(
    pred_mm: np.ndarray,
    true_mm: np.ndarray,
    *,
    pred_present: np.ndarray | None = None,
    true_present: np.ndarray | None = None,
) -> np.ndarray:
    """Euclidean errors [N, L] between predicted and true positions in mm.

    Args:
      pred_mm, true_mm: [N, L, D] (or [L, D] for one image), positions in mm.
        Non-finite rows mean 'no position' (absent prediction / missing truth).
      pred_present: [N, L] bool, the model's own presence decision.
      true_present: [N, L] bool, whether the landmark is in the truth.

    Returns:
      [N, L] float64: the error; NaN where the truth is missing; inf where the
      truth is present but the prediction absent.
    """
    pred = np.asarray(pred_mm, np.float64)
    true = np.asarray(true_mm, np.float64)
    if pred.ndim == 2 and true.ndim == 2:  # one image
        pred, true = pred[None], true[None]
    if pred.ndim != 3 or pred.shape != true.shape:
        raise ConfigError(
            f"pred_mm and true_mm must both be [N, L, D] (or [L, D]), got shapes "
            f"{np.shape(pred_mm)} and {np.shape(true_mm)}"
        )
    truth_ok = np.all(np.isfinite(true), axis=-1) & _mask(true_present, pred.shape[:2], "true_present")
    pred_ok = np.all(np.isfinite(pred), axis=-1) & _mask(pred_present, pred.shape[:2], "pred_present")
    with np.errstate(invalid="ignore"):
        distance = np.sqrt(np.sum((pred - true) ** 2, axis=-1))
    return np.where(truth_ok, np.where(pred_ok, distance, np.inf), np.nan)


def _mask(values, shape, name):
    if values is None:
        return np.ones(shape, bool)
    values = np.asarray(values)
    if values.ndim == 1 and len(shape) == 2 and shape[0] == 1:
        values = values[None]
    if values.shape != tuple(shape):
        raise ConfigError(f"{name} must have shape {tuple(shape)}, got {values.shape}")
    return values.astype(bool)


def _stats(errors: np.ndarray, predicted_present: np.ndarray | None, thresholds) -> dict[str, Any]:
    errors = errors.reshape(-1)
    has_truth = ~np.isnan(errors)
    finite = errors[np.isfinite(errors)]
    n_truth = int(has_truth.sum())
    false_detections = 0
    if predicted_present is not None:
        false_detections = int(np.sum(predicted_present.reshape(-1) & ~has_truth))
    nan = float("nan")
    return {
        "mre": float(finite.mean()) if finite.size else nan,
        "sd": float(finite.std()) if finite.size else nan,
        "median": float(np.median(finite)) if finite.size else nan,
        "max": float(finite.max()) if finite.size else nan,
        "sdr": {
            float(t): (100.0 * float(np.sum(finite <= t)) / n_truth if n_truth else nan)
            for t in thresholds
        },
        "n": int(finite.size),
        "n_truth": n_truth,
        "missed": int(np.sum(np.isinf(errors))),
        "false_detections": false_detections,
    }


def summarize(
    errors: np.ndarray,
    names: Sequence[str],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS_MM,
    *,
    predicted_present: np.ndarray | None = None,
) -> dict[str, Any]:
    """Overall and per-landmark statistics of an [N, L] error array.

    Args:
      errors: from `radial_errors` (NaN: no truth; inf: missed).
      names: L landmark names.
      thresholds: SDR radii in mm.
      predicted_present: [N, L] bool; needed to count false detections
        (predicted present where the truth has none).

    Returns:
      {"names", "thresholds", "n_images", "overall": stats,
       "per_landmark": {name: stats}} where stats has "mre", "sd", "median",
      "max" (mm, NaN when nothing to average), "sdr" {threshold: percent},
      "n" (cases with an error), "n_truth" (cases with truth), "missed",
      "false_detections".
    """
    errors = np.asarray(errors, np.float64)
    names = [str(n) for n in names]
    if errors.ndim != 2 or errors.shape[1] != len(names):
        raise ConfigError(
            f"errors must be [N, {len(names)}] for {len(names)} names, got shape {errors.shape}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"landmark names must be unique, got {names!r}")
    if np.any(errors < 0):
        raise ConfigError(f"errors must be >= 0, got minimum {np.nanmin(errors)!r}")
    thresholds = [float(t) for t in thresholds]
    if not all(math.isfinite(t) and t >= 0 for t in thresholds):
        raise ConfigError(f"thresholds must be finite and >= 0, got {thresholds!r}")
    present = None
    if predicted_present is not None:
        present = _mask(predicted_present, errors.shape, "predicted_present")
    return {
        "names": names,
        "thresholds": thresholds,
        "n_images": int(errors.shape[0]),
        "overall": _stats(errors, present, thresholds),
        "per_landmark": {
            name: _stats(errors[:, l], None if present is None else present[:, l], thresholds)
            for l, name in enumerate(names)
        },
    }


def sdr_curve(errors: np.ndarray, radii: Sequence[float]) -> np.ndarray:
    """Percentage of truly-present cases with error <= r, for each radius r."""
    errors = np.asarray(errors, np.float64).reshape(-1)
    errors = errors[~np.isnan(errors)]
    radii = np.asarray(radii, np.float64)
    if errors.size == 0:
        return np.full(radii.shape, np.nan)
    # inf (misses) sort last and never fall under a radius.
    ordered = np.sort(errors)
    return 100.0 * np.searchsorted(ordered, radii, side="right") / errors.size


# --------------------------------------------------------------------------
# Writers.


def write_errors_csv(path, image_ids: Sequence[str], names: Sequence[str], errors: np.ndarray) -> pathlib.Path:
    """One row per image x landmark: image_id, landmark, error_mm, status.

    status is "ok" (error_mm given), "missed" (truth present, prediction
    absent) or "no_truth"; error_mm is empty unless ok.
    """
    errors = np.asarray(errors, np.float64)
    image_ids, names = [str(i) for i in image_ids], [str(n) for n in names]
    if errors.shape != (len(image_ids), len(names)):
        raise ConfigError(
            f"errors must be [{len(image_ids)} images, {len(names)} landmarks], got {errors.shape}"
        )
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for i, image_id in enumerate(image_ids):
            for l, name in enumerate(names):
                e = errors[i, l]
                if np.isnan(e):
                    writer.writerow((image_id, name, "", "no_truth"))
                elif np.isinf(e):
                    writer.writerow((image_id, name, "", "missed"))
                else:
                    writer.writerow((image_id, name, repr(float(e)), "ok"))
    return path


def read_errors_csv(path) -> tuple[list[str], list[str], np.ndarray]:
    """The inverse of `write_errors_csv`: (image_ids, names, errors [N, L])."""
    path = pathlib.Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
            raise ConfigError(f"{path}: expected columns {CSV_COLUMNS}, got {reader.fieldnames}")
        rows = list(reader)
    image_ids = list(dict.fromkeys(r["image_id"] for r in rows))
    names = list(dict.fromkeys(r["landmark"] for r in rows))
    errors = np.full((len(image_ids), len(names)), np.nan)
    row_of = {k: i for i, k in enumerate(image_ids)}
    col_of = {k: i for i, k in enumerate(names)}
    values = {"missed": np.inf, "no_truth": np.nan}
    for r in rows:
        status = r["status"]
        if status == "ok":
            value = float(r["error_mm"])
        elif status in values:
            value = values[status]
        else:
            raise ConfigError(f"{path}: unknown status {status!r} for {r['image_id']}/{r['landmark']}")
        errors[row_of[r["image_id"]], col_of[r["landmark"]]] = value
    return image_ids, names, errors


def write_uncertainty_csv(
    path,
    image_ids: Sequence[str],
    names: Sequence[str],
    errors: np.ndarray,
    expected: np.ndarray,
    radius90: np.ndarray,
) -> pathlib.Path:
    """One row per landmark found in both truth and prediction (finite error), with the model's
    predicted error: image, landmark, error_mm, expected_error_mm, radius90_mm, within_radius90 (0/1).

    Args:
      errors, expected, radius90: [N images, L landmarks], mm.
    """
    shape = (len(image_ids), len(names))
    arrays = {"errors": errors, "expected": expected, "radius90": radius90}
    arrays = {k: np.asarray(v, np.float64) for k, v in arrays.items()}
    for key, value in arrays.items():
        if value.shape != shape:
            raise ConfigError(f"{key} must be [{shape[0]} images, {shape[1]} landmarks], got {value.shape}")
    errors, expected, radius90 = arrays["errors"], arrays["expected"], arrays["radius90"]
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(UNCERTAINTY_CSV_COLUMNS)
        for i, l in zip(*np.nonzero(np.isfinite(errors))):
            e, r = float(errors[i, l]), float(radius90[i, l])
            writer.writerow((str(image_ids[i]), str(names[l]), repr(e), repr(float(expected[i, l])), repr(r),
                             int(e <= r)))
    return path


def _num(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _mre_sd(stats: dict[str, Any]) -> str:
    if not math.isfinite(stats["mre"]):
        return "n/a"
    return f"{stats['mre']:.2f} ± {stats['sd']:.2f}"


def format_markdown_table(summary: dict[str, Any], second_annotator_summary: dict[str, Any] | None = None) -> str:
    """The markdown table `write_markdown_table` writes."""
    thresholds = summary["thresholds"]
    header = ["Landmark", "MRE ± SD (mm)", "Median (mm)"]
    header += [f"SDR {t:g} mm (%)" for t in thresholds]
    header += ["Missed", "False det."]
    if second_annotator_summary is not None:
        header += ["2nd annotator MRE ± SD (mm)"]

    def row(label, stats, second):
        cells = [label, _mre_sd(stats), _num(stats["median"])]
        cells += [_num(stats["sdr"][t], 1) for t in thresholds]
        cells += [str(stats["missed"]), str(stats["false_detections"])]
        if second_annotator_summary is not None:
            cells.append("n/a" if second is None else _mre_sd(second))
        return "| " + " | ".join(cells) + " |"

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    second_per = (second_annotator_summary or {}).get("per_landmark", {})
    for name in summary["names"]:
        lines.append(row(name, summary["per_landmark"][name], second_per.get(name)))
    overall_second = None if second_annotator_summary is None else second_annotator_summary["overall"]
    lines.append(row("**All**", summary["overall"], overall_second))
    return "\n".join(lines) + "\n"


def write_markdown_table(
    path, summary: dict[str, Any], second_annotator_summary: dict[str, Any] | None = None
) -> pathlib.Path:
    """Per-landmark MRE ± SD, median, SDR columns, misses and an overall row.

    With `second_annotator_summary` (a `summarize` of the second annotator
    against the first) a last column gives its MRE ± SD per landmark, the
    inter-observer reference the model is compared with.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_markdown_table(summary, second_annotator_summary), encoding="utf-8")
    return path


def format_uncertainty_markdown(uncertainty: dict[str, Any]) -> str:
    """The predicted error's section of a report, from `uncertainty.summarize_uncertainty`:
    ranking (Spearman, AUROC), radius90 coverage, the calibration bins and risk-coverage."""
    u = uncertainty
    lines = [
        "## Predicted error (expected_error_mm, radius90_mm)",
        "",
        f"Over the {u['n']} landmarks found in both truth and prediction.",
        "",
        "| Spearman | AUROC > 2 mm | AUROC > 4 mm | radius90 coverage (%) | median radius90 (mm) |",
        "|---:|---:|---:|---:|---:|",
        f"| {_num(u['spearman'], 3)} | {_num(u['auroc_2mm'], 3)} | {_num(u['auroc_4mm'], 3)} "
        f"| {_num(100 * u['coverage90'], 1)} | {_num(u['median_radius90_mm'])} |",
        "",
        "Calibration, equal-count bins of expected_error_mm:",
        "",
        "| Bin | Landmarks | Mean predicted (mm) | Mean actual (mm) |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {k} | {b['n']} | {_num(b['predicted_mm'])} | {_num(b['actual_mm'])} |"
              for k, b in enumerate(u["calibration"], start=1)]
    lines += [
        "",
        "Risk-coverage, the highest expected_error_mm set aside first:",
        "",
        "| Kept (%) | MRE (mm) | Max (mm) |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {100 * b['kept']:.0f} | {_num(b['mre_mm'])} | {_num(b['max_mm'])} |" for b in u["risk_coverage"]]
    lines += ["", "![calibration](calibration.png)", "![risk-coverage](risk_coverage.png)"]
    return "\n".join(lines) + "\n"


def format_summary(summary: dict[str, Any], *, per_landmark: bool = False) -> str:
    """A short console report: one overall line (and one per landmark if asked).

    A summary with "uncertainty" (`report.evaluate` of a model that predicts
    its error) ends with one line on how well that prediction did.
    """

    def line(stats):
        sdr = ", ".join(f"{t:g} mm {_num(stats['sdr'][t], 1)}%" for t in summary["thresholds"])
        text = f"MRE {_mre_sd(stats)} mm, median {_num(stats['median'])} mm; SDR {sdr}"
        if stats["missed"] or stats["false_detections"]:
            text += f"; missed {stats['missed']}, false detections {stats['false_detections']}"
        return text

    overall = summary["overall"]
    lines = [
        f"{summary['n_images']} images, {len(summary['names'])} landmarks, "
        f"{overall['n_truth']} annotated: {line(overall)}"
    ]
    if per_landmark:
        width = max((len(n) for n in summary["names"]), default=0)
        for name in summary["names"]:
            lines.append(f"  {name:<{width}}  {line(summary['per_landmark'][name])}")
    if "uncertainty" in summary:
        lines.append(f"predicted error: {format_uncertainty(summary['uncertainty'])}")
    return "\n".join(lines)


def format_pooled(errors: np.ndarray, names: Sequence[str], folds: int) -> str:
    """The machine-read last line of the k-fold benchmarks for errors [images, L] (mm) pooled over
    `folds` folds: `pooled_mre_mm=... sdr2_pct=... images=... folds=... over10mm=... max_mm=...`."""
    overall = summarize(errors, names)
    return (f"pooled_mre_mm={overall['overall']['mre']:.3f} sdr2_pct={overall['overall']['sdr'][2.0]:.1f} "
            f"images={overall['n_images']} folds={folds} over10mm={int((errors > 10).sum())} "
            f"max_mm={np.nanmax(errors):.1f}")
