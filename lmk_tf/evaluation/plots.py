"""Figures for evaluation reports and docs.

matplotlib is imported inside the functions and used through its object API
with the Agg canvas (never pyplot), so importing this module is cheap and no
global backend is switched for the caller.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

from lmk_tf import overlay, synthetic
from lmk_tf.errors import ConfigError
from lmk_tf.evaluation import metrics as evaluation
from lmk_tf.evaluation import uncertainty
from lmk_tf.image import Image


def _figure(figsize, dpi):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No bbox_inches='tight': the PNG is exactly figsize * dpi pixels.
    fig.savefig(path, format="png")
    return path


def plot_error_boxplot(
    errors: np.ndarray,
    names: Sequence[str],
    path,
    *,
    title: str | None = None,
    figsize: tuple[float, float] = (8.0, 4.0),
    dpi: int = 100,
) -> pathlib.Path:
    """Box plot of the radial errors (mm) per landmark; misses noted in the labels.

    Args:
      errors: [N, L] from `evaluation.radial_errors` (NaN: no truth, inf: missed).
      names: L landmark names.
    """
    errors = np.asarray(errors, np.float64)
    names = list(names)
    if errors.ndim != 2 or errors.shape[1] != len(names):
        raise ConfigError(
            f"errors must be [N, {len(names)}] for {len(names)} names, got shape {errors.shape}"
        )
    fig = _figure(figsize, dpi)
    ax = fig.add_subplot(1, 1, 1)
    data, labels = [], []
    for l, name in enumerate(names):
        column = errors[:, l]
        data.append(column[np.isfinite(column)])
        missed = int(np.sum(np.isinf(column)))
        labels.append(f"{name}\n({missed} missed)" if missed else name)
    ax.boxplot(data, showfliers=True, flierprops={"markersize": 3})
    ax.set_xticks(np.arange(1, len(names) + 1), labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("radial error (mm)")
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.subplots_adjust(bottom=0.3)
    return _save(fig, path)


def plot_sdr_curve(
    errors: np.ndarray,
    path,
    *,
    second_annotator_errors: np.ndarray | None = None,
    max_radius_mm: float = 10.0,
    label: str = "model",
    second_label: str = "second annotator",
    thresholds: Sequence[float] = (2.0, 2.5, 3.0, 4.0),
    figsize: tuple[float, float] = (6.0, 4.0),
    dpi: int = 100,
) -> pathlib.Path:
    """Success detection rate (%) against the radius 0..max_radius_mm.

    A second annotator's errors (against the first) give a second curve: the
    inter-observer variability the model is compared with.
    """
    if not max_radius_mm > 0:
        raise ConfigError(f"max_radius_mm must be > 0, got {max_radius_mm!r}")
    radii = np.linspace(0.0, max_radius_mm, 201)
    fig = _figure(figsize, dpi)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(radii, evaluation.sdr_curve(errors, radii), label=label, color="C0")
    if second_annotator_errors is not None:
        ax.plot(
            radii,
            evaluation.sdr_curve(second_annotator_errors, radii),
            label=second_label,
            color="C1",
            linestyle="--",
        )
    for t in thresholds:
        ax.axvline(t, color="0.7", linewidth=0.8, zorder=0)
    ax.set_xlim(0.0, max_radius_mm)
    ax.set_ylim(0.0, 100.0)
    ax.set_xlabel("radius (mm)")
    ax.set_ylabel("success detection rate (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def _predicted_and_actual(expected, errors) -> tuple[np.ndarray, np.ndarray]:
    expected = np.asarray(expected, np.float64).reshape(-1)
    errors = np.asarray(errors, np.float64).reshape(-1)
    if expected.shape != errors.shape:
        raise ConfigError(f"expected ({expected.size} values) and errors ({errors.size}) must pair up one to one")
    if not errors.size:
        raise ConfigError("no landmarks to plot: expected and errors are empty")
    if not (np.all(np.isfinite(expected)) and np.all(np.isfinite(errors))):
        # Misses (inf) and landmarks without truth (NaN) have no error to compare with.
        raise ConfigError("expected and errors must be finite: pass only the landmarks found in both "
                          "truth and prediction")
    return expected, errors


def _finish(fig, ax, path, xlabel, ylabel, title) -> pathlib.Path:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_calibration(
    expected,
    errors,
    path,
    *,
    title: str = "Calibration of expected_error_mm",
    figsize: tuple[float, float] = (4.5, 4.0),
    dpi: int = 120,
) -> pathlib.Path:
    """Mean actual against mean predicted error in 10 equal-count bins of the prediction (fewer
    bins for fewer than 10 landmarks).

    Args:
      expected: the model's `expected_error_mm` of each landmark (any shape).
      errors: the actual radial errors (mm) of the same landmarks, all finite.
    """
    expected, errors = _predicted_and_actual(expected, errors)
    bins = uncertainty.calibration_bins(expected, errors)
    predicted = [b["predicted_mm"] for b in bins]
    actual = [b["actual_mm"] for b in bins]
    top = max(max(predicted), max(actual)) * 1.1
    fig = _figure(figsize, dpi)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, top], [0, top], color="0.7", lw=1, label="ideal")
    ax.plot(predicted, actual, "o-", label=f"binned ({len(bins)} equal-count bins)")
    return _finish(fig, ax, path, "predicted error (mm)", "actual mean error (mm)", title)


def plot_risk_coverage(
    expected,
    errors,
    path,
    *,
    title: str = "Risk-coverage",
    figsize: tuple[float, float] = (4.5, 4.0),
    dpi: int = 120,
) -> pathlib.Path:
    """MRE of the landmarks kept against the share kept, the most doubtful set aside first.

    The oracle sets aside the largest actual errors first: the best any
    predicted error could do.
    """
    kept, mre, oracle = risk_coverage_curves(expected, errors)
    fig = _figure(figsize, dpi)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(kept, mre, label="set aside by expected_error_mm")
    ax.plot(kept, oracle, "--", color="0.6", label="oracle (by the actual error)")
    return _finish(fig, ax, path, "landmarks kept (%)", "MRE of the kept landmarks (mm)", title)


def risk_coverage_curves(expected, errors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kept %, MRE kept by expected, MRE kept by the actual error) for keeping 1..n landmarks."""
    expected, errors = _predicted_and_actual(expected, errors)
    count = np.arange(1, errors.size + 1)
    by_expected = errors[np.argsort(expected, kind="stable")]
    return 100.0 * count / errors.size, np.cumsum(by_expected) / count, np.cumsum(np.sort(errors)) / count


def worst_images(errors: np.ndarray, k: int) -> list[int]:
    """Indices of the k worst images: most misses first, then largest mean error."""
    errors = np.asarray(errors, np.float64)
    scores = []
    for i, row in enumerate(errors):
        finite = row[np.isfinite(row)]
        mean = float(finite.mean()) if finite.size else -np.inf
        scores.append((-int(np.sum(np.isinf(row))), -mean, i))
    scores.sort()
    # Images with no truth at all say nothing about the model.
    return [i for missed, mean, i in scores if missed < 0 or mean != np.inf][:k]


def save_worst_overlays(
    out_dir,
    images: Sequence[Image] | Callable[[int], Image],
    pred_index: np.ndarray,
    errors: np.ndarray,
    *,
    truth_index: np.ndarray | None = None,
    image_ids: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    present: np.ndarray | None = None,
    k: int = 5,
    max_size: int | None = 1024,
) -> list[pathlib.Path]:
    """Overlay PNGs of the k worst images, named `<rank>_<image id>.png`.

    Args:
      out_dir: folder to write into (created).
      images: the N images, or a function i -> image so that only k are loaded.
      pred_index, truth_index: [N, L, ndim] indices of each image.
      errors: [N, L] radial errors, used for the ranking.
      image_ids: N names for the files (default the image number).
      present: [N, L] predicted presence.
    """
    if k < 0:
        raise ConfigError(f"k must be >= 0, got {k!r}")
    errors = np.asarray(errors, np.float64)
    pred_index = np.asarray(pred_index, np.float64)
    if pred_index.ndim != 3 or pred_index.shape[:2] != errors.shape:
        raise ConfigError(
            f"pred_index must be [N, L, ndim] matching errors {errors.shape}, got {pred_index.shape}"
        )
    out_dir = pathlib.Path(out_dir)
    load = images if callable(images) else images.__getitem__
    # A report rewritten in place must not keep the worst images of an earlier run.
    for old in out_dir.glob("[0-9][0-9]_*.png"):
        old.unlink()
    paths = []
    for rank, i in enumerate(worst_images(errors, k), start=1):
        image_id = str(image_ids[i]) if image_ids is not None else f"{i:04d}"
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", image_id)
        paths.append(
            overlay.draw_landmarks(
                load(i),
                pred_index[i],
                out_dir / f"{rank:02d}_{safe}.png",
                names=names,
                truth_index=None if truth_index is None else np.asarray(truth_index)[i],
                present=None if present is None else np.asarray(present)[i],
                max_size=max_size,
            )
        )
    return paths


def save_synthetic_gallery(path, *, seed: int = 0, num_2d: int = 6, tile_px: int = 256) -> pathlib.Path:
    """docs/synthetic.png: num_2d 2D samples, then one 3D sample as three montages.

    Landmarks are drawn at their exact positions (crosses with names), so the
    picture shows whether they sit on the structure tips. A 2D caption names
    the landmark pushed outside the field of view, if any. The 3D montages show
    the planes normal to axes 0, 1, 2 through the landmarks' mean, the cone
    apex and the rod end (markers of landmarks off a plane are drawn small).
    """
    label_h = 18
    columns = 3
    rows = []
    row = []
    for i in range(num_2d):
        image, points, names = synthetic.make_sample(2, synthetic.sample_seed(seed, i))
        picture = overlay.render_landmarks(image, points, names=names, max_size=tile_px)
        outside = image.meta["synthetic"]["outside_landmark"]
        caption = f"2D sample {i}" + (f" ({outside} outside the image)" if outside else "")
        row.append((picture, caption))
        if len(row) == columns or i == num_2d - 1:
            rows.append(row)
            row = []
    volume, points3, names3 = synthetic.make_sample(3, synthetic.sample_seed(seed, 1000))
    foci = [("the landmarks' mean", None)] + [
        (name, points3[names3.index(name)]) for name in ("cone_apex", "rod_end") if name in names3
    ]
    for label, focus in foci:
        montage = overlay.render_landmarks(
            volume, points3, names=names3, max_size=columns * tile_px, focus_index=focus
        )
        rows.append([(montage, f"3D 64^3 at 1.5 mm, axis-0/1/2 planes through {label}")])

    width = max(sum(p.width for p, _ in r) + 4 * (len(r) - 1) for r in rows)
    height = sum(max(p.height for p, _ in r) + label_h for r in rows)
    sheet = PILImage.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    text_font = overlay.font(13)
    y = 0
    for r in rows:
        x = 0
        for picture, caption in r:
            draw.text((x + 4, y + 2), caption, fill=(0, 0, 0), font=text_font)
            sheet.paste(picture, (x, y + label_h))
            x += picture.width + 4
        y += max(p.height for p, _ in r) + label_h
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path
