"""Pictures of an image with its landmarks (Pillow only, fast on large X-rays).

Predictions are coloured crosses, the truth (when given) a circle of the same
colour joined to its prediction by a line, so the error can be read off the
picture. 3D images become a montage of three orthogonal planes through a focus
point (by default the mean of the landmarks shown); each landmark is drawn on
every plane at its projected position, full size and labelled when it lies
within 3 mm of the plane, small and unlabelled otherwise.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from lmk_tf.errors import ConfigError
from lmk_tf.image import Image

# Distinct, colour-blind-friendly-ish colours (tab10), cycled per landmark.
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (255, 215, 0),
)
# Smallest panel side in a 3D montage: a 64^3 volume is otherwise too small
# to see the markers.
_MIN_PANEL_PX = 256
# Percentiles are estimated from at most this many pixels (strided), which is
# indistinguishable from the full estimate and 20x faster on a 2000^2 X-ray.
_PERCENTILE_SAMPLES = 1 << 18
_GAP_PX = 4
# 3D: landmarks within this distance (mm) of a plane count as on it (full-size
# marker and label); the others are drawn small and unlabelled.
_IN_PLANE_MM = 3.0


def window_to_uint8(array: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """Linear window from the low to the high percentile, to uint8."""
    array = np.asarray(array)
    flat = array.reshape(-1)
    step = max(1, flat.size // _PERCENTILE_SAMPLES)
    sample = flat[::step].astype(np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return np.zeros(array.shape, np.uint8)
    low, high = np.percentile(sample, [low_pct, high_pct])
    if high <= low:
        high = low + 1.0
    scaled = (array.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
    return np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)


def render_landmarks(
    image: Image,
    points_index: np.ndarray,
    *,
    names: Sequence[str] | None = None,
    truth_index: np.ndarray | None = None,
    present: np.ndarray | None = None,
    slice_axis: int = 0,
    max_size: int | None = None,
    focus_index: Sequence[float] | None = None,
    radius_mm: np.ndarray | None = None,
) -> PILImage.Image:
    """The picture `draw_landmarks` writes, as an RGB PIL image.

    Args:
      image: 2D or 3D `Image`.
      points_index: [L, ndim] predicted continuous indices (array-axis order);
        non-finite rows are not drawn.
      names: L labels written beside the predictions.
      truth_index: [L, ndim] true indices, drawn as circles joined to the
        predictions; non-finite rows (truth missing) are not drawn.
      present: [L] bool; predictions marked absent are not drawn (their truth
        circle still is, so a miss stays visible).
      slice_axis: 3D only: the axis whose plane is the first panel of the
        montage (the other two follow in increasing axis order).
      max_size: if given, the longest side of the result is at most this.
      focus_index: 3D only: the point the three planes go through; default
        the mean of the drawn predictions (else truth, else the centre).
      radius_mm: [L] radii in mm (e.g. the model's `radius90_mm`) drawn as thin
        circles around the predictions: where the truth lies 9 times in 10.
    """
    points, truth, present, names = _check_points(image, points_index, truth_index, present, names)
    radii = _check_radii(radius_mm, len(points))
    if image.ndim == 2:
        gray = window_to_uint8(image.array)
        panel, factors = _resized(gray, image.spacing, max_size, upscale=False)
        picture = PILImage.fromarray(panel, "L").convert("RGB")
        _draw(picture, points, truth, present, names, factors, depth=None,
              radii_px=radii * float(np.mean(factors / np.asarray(image.spacing))))
        return picture

    if slice_axis not in (0, 1, 2):
        raise ConfigError(f"slice_axis must be 0, 1 or 2 for a 3D image, got {slice_axis!r}")
    focus = _focus(image, points, truth, present, focus_index)
    gray = window_to_uint8(image.array)  # one window for all three planes
    panels = []
    for axis in [slice_axis] + [a for a in range(3) if a != slice_axis]:
        keep = [a for a in range(3) if a != axis]
        k = int(np.clip(np.round(focus[axis]), 0, image.shape[axis] - 1))
        plane = np.take(gray, k, axis=axis)
        spacing = [image.spacing[a] for a in keep]
        panel, factors = _resized(plane, spacing, None, upscale=True)
        picture = PILImage.fromarray(panel, "L").convert("RGB")
        # Distance to the plane in mm decides the marker size.
        depth = (np.abs(points[:, axis] - k) * image.spacing[axis], np.abs(truth[:, axis] - k) * image.spacing[axis])
        _draw(picture, points[:, keep], truth[:, keep], present, names, factors, depth=depth,
              radii_px=radii * float(np.mean(factors / np.asarray(spacing))))
        panels.append(picture)
    width = sum(p.width for p in panels) + _GAP_PX * (len(panels) - 1)
    height = max(p.height for p in panels)
    montage = PILImage.new("RGB", (width, height), (0, 0, 0))
    x = 0
    for p in panels:
        montage.paste(p, (x, 0))
        x += p.width + _GAP_PX
    if max_size is not None and max(montage.size) > max_size:
        f = max_size / max(montage.size)
        montage = montage.resize(
            (max(1, round(montage.width * f)), max(1, round(montage.height * f))),
            PILImage.BILINEAR,
        )
    return montage


def draw_landmarks(
    image: Image,
    points_index: np.ndarray,
    path,
    *,
    names: Sequence[str] | None = None,
    truth_index: np.ndarray | None = None,
    present: np.ndarray | None = None,
    slice_axis: int = 0,
    max_size: int | None = None,
    focus_index: Sequence[float] | None = None,
    radius_mm: np.ndarray | None = None,
) -> pathlib.Path:
    """Write a PNG of `image` with its landmarks; see `render_landmarks`. Returns the path."""
    picture = render_landmarks(
        image,
        points_index,
        names=names,
        truth_index=truth_index,
        present=present,
        slice_axis=slice_axis,
        max_size=max_size,
        focus_index=focus_index,
        radius_mm=radius_mm,
    )
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Fast compression: a full-size 2000 x 2400 X-ray then saves in well under a second.
    picture.save(path, format="PNG", compress_level=1)
    return path


def font(size: int):
    """Pillow's built-in scalable font (no font files needed)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _check_points(image, points_index, truth_index, present, names):
    points = np.asarray(points_index, np.float64)
    if points.ndim != 2 or points.shape[1] != image.ndim:
        raise ConfigError(
            f"points_index must be [L, {image.ndim}] for a {image.ndim}D image, got shape {points.shape}"
        )
    n = len(points)
    if truth_index is None:
        truth = np.full_like(points, np.nan)
    else:
        truth = np.asarray(truth_index, np.float64)
        if truth.shape != points.shape:
            raise ConfigError(
                f"truth_index must have the shape of points_index {points.shape}, got {truth.shape}"
            )
    if present is None:
        present = np.ones(n, bool)
    else:
        present = np.asarray(present, bool).reshape(-1)
        if present.shape != (n,):
            raise ConfigError(f"present must have {n} values, got shape {present.shape}")
    if names is not None:
        names = [str(s) for s in names]
        if len(names) != n:
            raise ConfigError(f"names must have {n} entries, got {len(names)}: {names!r}")
    return points, truth, present, names


def _check_radii(radius_mm, n):
    if radius_mm is None:
        return np.full(n, np.nan)
    radii = np.asarray(radius_mm, np.float64).reshape(-1)
    if radii.shape != (n,):
        raise ConfigError(f"radius_mm must have {n} values, got shape {radii.shape}")
    return radii


def _focus(image, points, truth, present, focus_index):
    if focus_index is not None:
        focus = np.asarray(focus_index, np.float64)
        if focus.shape != (3,):
            raise ConfigError(f"focus_index must have 3 values, got {list(focus)}")
        return focus
    for candidates in (points[present], truth):
        ok = candidates[np.all(np.isfinite(candidates), axis=1)]
        ok = ok[image.contains_index(ok)] if len(ok) else ok
        if len(ok):
            return ok.mean(axis=0)
    return (np.asarray(image.shape, np.float64) - 1.0) / 2.0


def _resized(gray, spacing, max_size, upscale):
    """Resize so pixels are square in mm (and within max_size); returns (array, factors).

    factors[a] = output pixels per input pixel along array axis a.
    """
    spacing = np.asarray(spacing, np.float64)
    factors = spacing / spacing.min()  # square pixels at the finest spacing
    size = np.asarray(gray.shape) * factors
    if upscale and size.max() < _MIN_PANEL_PX:
        factors = factors * (_MIN_PANEL_PX / size.max())
    size = np.asarray(gray.shape) * factors
    if max_size is not None and size.max() > max_size:
        factors = factors * (max_size / size.max())
    out_shape = np.maximum(np.round(np.asarray(gray.shape) * factors).astype(int), 1)
    if tuple(out_shape) == gray.shape:
        return gray, np.ones(2)
    picture = PILImage.fromarray(gray, "L")
    # reducing_gap makes large downscales fast (a box pre-reduction) without aliasing.
    picture = picture.resize(
        (int(out_shape[1]), int(out_shape[0])), PILImage.BILINEAR, reducing_gap=2.0
    )
    return np.asarray(picture), out_shape / np.asarray(gray.shape)


def _draw(picture, points, truth, present, names, factors, depth, radii_px=None):
    """Markers in place; index i maps to output coordinate (i + 0.5) * f - 0.5."""
    draw = ImageDraw.Draw(picture)
    side = min(picture.size)
    r_full = max(4.0, side / 60.0)
    width = max(1, round(side / 400.0))
    text_font = font(max(9, round(side / 45.0)))

    def to_xy(p):
        y, x = (p + 0.5) * factors - 0.5
        return float(x), float(y)

    def on_canvas(p):
        # Points outside the image (e.g. a landmark beyond the field of view)
        # cannot be shown; drawing them would leave stray labels at the border.
        x, y = to_xy(p)
        return -0.5 <= x <= picture.width - 0.5 and -0.5 <= y <= picture.height - 0.5

    def in_plane(l, which):
        return depth is None or depth[which][l] <= _IN_PLANE_MM

    def radius(l, which):
        # Landmarks off the plane are drawn smaller, so the in-plane ones stand out.
        return r_full if in_plane(l, which) else r_full * 0.5

    for l in range(len(points)):
        colour = PALETTE[l % len(PALETTE)]
        has_pred = present[l] and np.all(np.isfinite(points[l])) and on_canvas(points[l])
        has_truth = np.all(np.isfinite(truth[l])) and on_canvas(truth[l])
        if has_truth:
            tx, ty = to_xy(truth[l])
            r = radius(l, 1)
            draw.ellipse((tx - r, ty - r, tx + r, ty + r), outline=colour, width=width)
            if has_pred:
                draw.line((tx, ty, *to_xy(points[l])), fill=colour, width=width)
        if has_pred and radii_px is not None and np.isfinite(radii_px[l]) and in_plane(l, 0):
            x, y = to_xy(points[l])
            rr = max(float(radii_px[l]), 1.0)
            draw.ellipse((x - rr, y - rr, x + rr, y + rr), outline=colour, width=1)
        if has_pred:
            x, y = to_xy(points[l])
            r = radius(l, 0)
            draw.line((x - r, y, x + r, y), fill=colour, width=width + 1)
            draw.line((x, y - r, x, y + r), fill=colour, width=width + 1)
            if names is not None and in_plane(l, 0):
                draw.text(
                    (x + r + 2, y - r - 2),
                    names[l],
                    fill=colour,
                    font=text_font,
                    stroke_width=1,
                    stroke_fill=(0, 0, 0),
                )
        elif has_truth and names is not None and in_plane(l, 1):
            tx, ty = to_xy(truth[l])
            draw.text((tx + r_full + 2, ty), names[l] + " (missed)", fill=colour, font=text_font)
