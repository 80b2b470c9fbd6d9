"""Perturbations of a 2D image that move its landmarks with it, for robustness benchmarks.

Each perturbation takes a 2D array and landmark indices (row, col) and returns
the new array and the landmarks' new indices, NaN for a landmark the
perturbation pushed out of the field of view. Users' images differ from the
training images in these ways: magnification and patient size, head position,
a field of view that stops above the chin or below the skull top, exposure.
"""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage


def _background(array: np.ndarray) -> float:
    """The detector background: the median of the image's outermost rows and columns."""
    edge = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    return float(np.median(edge))


def _outside_to_nan(points: np.ndarray, shape) -> np.ndarray:
    points = np.array(points, np.float64)
    out = np.any((points < -0.5) | (points > np.asarray(shape) - 0.5), axis=1)
    points[out] = np.nan
    return points


def rescale(array: np.ndarray, points: np.ndarray, factor: float):
    """The content scaled by `factor` about the centre, inside a canvas of the original size."""
    h, w = array.shape
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    scaled = np.asarray(PILImage.fromarray(array.astype(np.float32), mode="F").resize((nw, nh), PILImage.BILINEAR))
    canvas = np.full((h, w), _background(array), np.float32)
    # Top-left of the scaled image in the canvas (negative when it is larger than the canvas).
    top, left = (h - nh) // 2, (w - nw) // 2
    src_r0, src_c0 = max(0, -top), max(0, -left)
    dst_r0, dst_c0 = max(0, top), max(0, left)
    rows, cols = min(nh - src_r0, h - dst_r0), min(nw - src_c0, w - dst_c0)
    canvas[dst_r0:dst_r0 + rows, dst_c0:dst_c0 + cols] = scaled[src_r0:src_r0 + rows, src_c0:src_c0 + cols]
    # PIL maps pixel centres: new = (old + 0.5) * (n_new / n_old) - 0.5.
    ratio = np.array([nh / h, nw / w])
    moved = (np.asarray(points, np.float64) + 0.5) * ratio - 0.5 + np.array([top, left])
    return canvas, _outside_to_nan(moved, (h, w))


def shift(array: np.ndarray, points: np.ndarray, fraction: float):
    """The content moved along the columns by `fraction` of the width (positive: to the right)."""
    h, w = array.shape
    dx = round(fraction * w)
    canvas = np.full((h, w), _background(array), np.float32)
    if dx >= 0:
        canvas[:, dx:] = array[:, : w - dx]
    else:
        canvas[:, : w + dx] = array[:, -dx:]
    moved = np.asarray(points, np.float64) + np.array([0.0, dx])
    return canvas, _outside_to_nan(moved, (h, w))


def cut_rows(array: np.ndarray, points: np.ndarray, top: float = 0.0, bottom: float = 0.0):
    """The top and/or bottom fraction of the rows removed: a smaller image."""
    h = array.shape[0]
    r0, r1 = round(top * h), h - round(bottom * h)
    moved = np.asarray(points, np.float64) - np.array([r0, 0.0])
    return np.ascontiguousarray(array[r0:r1]), _outside_to_nan(moved, (r1 - r0, array.shape[1]))


def gamma(array: np.ndarray, points: np.ndarray, g: float):
    """Another exposure curve: (x / max)^g on the image's own range; landmarks stay."""
    lo, hi = float(array.min()), float(array.max())
    u = (array.astype(np.float64) - lo) / max(hi - lo, 1e-12)
    return (lo + (hi - lo) * u**g).astype(np.float32), np.array(points, np.float64)


# How much each perturbation magnifies the anatomy: a rescaled image keeps its pixel
# spacing, so an error in its pixels, times the spacing, is the anatomy's error times this.
MAGNIFICATION = {"scale0.75": 0.75, "scale1.3": 1.3}

# name -> function(array, points) -> (array, points): the benchmark's perturbations.
PERTURBATIONS = {
    "none": lambda a, p: (a.astype(np.float32), np.array(p, np.float64)),
    "scale0.75": lambda a, p: rescale(a, p, 0.75),
    "scale1.3": lambda a, p: rescale(a, p, 1.3),
    "shift+15%": lambda a, p: shift(a, p, 0.15),
    "shift-15%": lambda a, p: shift(a, p, -0.15),
    "cut_top20%": lambda a, p: cut_rows(a, p, top=0.2),
    "cut_bottom15%": lambda a, p: cut_rows(a, p, bottom=0.15),
    "gamma0.6": lambda a, p: gamma(a, p, 0.6),
    "gamma1.6": lambda a, p: gamma(a, p, 1.6),
}
