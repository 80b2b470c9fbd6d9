"""How well a predicted error ranks and bounds the actual one.

Spearman rank correlation, AUROC for finding landmarks more than T mm off,
coverage of the 90 % radius, a binned calibration table and a risk-coverage
curve (the MRE of the landmarks kept when the most doubtful are set aside).
"""

from __future__ import annotations

import numpy as np


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), 1-based."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a, b) -> float:
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def auroc(score, positive) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney)."""
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    r = _ranks(score)
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def calibration_bins(predicted, actual, bins: int = 10) -> list[dict]:
    """Equal-count bins of the predicted error: mean predicted vs mean actual error."""
    predicted, actual = np.asarray(predicted), np.asarray(actual)
    order = np.argsort(predicted)
    out = []
    for chunk in np.array_split(order, bins):
        if len(chunk):
            out.append({"n": int(len(chunk)), "predicted_mm": float(predicted[chunk].mean()),
                        "actual_mm": float(actual[chunk].mean())})
    return out


def risk_coverage(score, errors, fractions=(1.0, 0.95, 0.9, 0.8, 0.7, 0.5)) -> list[dict]:
    """MRE and largest error of the landmarks kept when the most doubtful (highest score) are set aside."""
    order = np.argsort(score)
    errors = np.asarray(errors)
    out = []
    for f in fractions:
        keep = order[: max(1, int(round(f * len(order))))]
        out.append({"kept": float(f), "mre_mm": float(errors[keep].mean()), "max_mm": float(errors[keep].max())})
    return out


def review_thresholds(expected, errors, thresholds=(1.0, 1.5, 2.0, 3.0), gross_mm: float = 4.0) -> list[dict]:
    """What `--review_mm=X` would do: per X, the share of landmarks whose expected error is above it
    (flagged for review), how many of the errors > gross_mm are among them, and the MRE and largest
    error of the landmarks not flagged."""
    expected, errors = np.asarray(expected), np.asarray(errors)
    gross = errors > gross_mm
    out = []
    for x in thresholds:
        flagged = expected > x
        kept = errors[~flagged]
        out.append({"review_mm": float(x), "flagged": float(flagged.mean()),
                    "gross_caught": int((flagged & gross).sum()), "gross": int(gross.sum()),
                    "kept_mre_mm": float(kept.mean()) if len(kept) else float("nan"),
                    "kept_max_mm": float(kept.max()) if len(kept) else float("nan")})
    return out


def format_review(rows: list[dict], gross_mm: float = 4.0) -> str:
    return "\n".join(
        f"--review_mm={r['review_mm']:g}: flags {100 * r['flagged']:.1f} % of the landmarks, "
        f"{r['gross_caught']} of the {r['gross']} > {gross_mm:g} mm among them; the rest MRE "
        f"{_figure(r['kept_mre_mm'])} mm, max {_figure(r['kept_max_mm'])} mm" for r in rows)


def summarize_uncertainty(expected, radius90, errors) -> dict:
    expected, radius90, errors = np.asarray(expected), np.asarray(radius90), np.asarray(errors)
    return {
        "n": int(len(errors)),
        "spearman": spearman(expected, errors),
        "auroc_2mm": auroc(expected, errors > 2.0),
        "auroc_4mm": auroc(expected, errors > 4.0),
        "coverage90": float((errors <= radius90).mean()),
        "median_radius90_mm": float(np.median(radius90)),
        "calibration": calibration_bins(expected, errors),
        "risk_coverage": risk_coverage(expected, errors),
    }


def _figure(value: float) -> str:
    # An AUROC is undefined when no landmark is (or every one is) that far off: common at 4 mm.
    return "n/a" if not np.isfinite(value) else f"{value:.3f}"


def format_uncertainty(summary: dict) -> str:
    return (f"Spearman {_figure(summary['spearman'])}, AUROC >2 mm {_figure(summary['auroc_2mm'])}, "
            f">4 mm {_figure(summary['auroc_4mm'])}, radius90 coverage {100 * summary['coverage90']:.1f} % "
            f"(median radius {summary['median_radius90_mm']:.2f} mm), n={summary['n']}")
