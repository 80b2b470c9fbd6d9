"""Helpers every image reader shares: spacing resolution, grey conversion, errors.

Kept free of any format library so that importing it costs nothing.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np

from lmk_tf.errors import ConfigError, ImageReadError

# ITU-R BT.601 luma weights: what Pillow's convert("L") uses, so greyscale
# pictures stored as RGB (the ISBI jpgs) come out the same through any reader.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])

SpacingArg = float | Sequence[float] | None

# Readers refuse images with more pixels/voxels than this, from the header,
# before any pixel memory is allocated: a corrupt or hostile header (65535^3)
# must not take the machine's memory. 2**28 is a 1024 x 1024 x 256 volume
# (1 GiB as float32). The environment variable overrides it for every reader.
MAX_IMAGE_ELEMENTS_ENV = "LMK_MAX_IMAGE_ELEMENTS"
DEFAULT_MAX_IMAGE_ELEMENTS = 2**28


def max_image_elements() -> int:
    """The readers' size limit: $LMK_MAX_IMAGE_ELEMENTS, else DEFAULT_MAX_IMAGE_ELEMENTS."""
    value = os.environ.get(MAX_IMAGE_ELEMENTS_ENV)
    if not value:
        return DEFAULT_MAX_IMAGE_ELEMENTS
    try:
        limit = int(value)
    except ValueError:
        raise ConfigError(f"${MAX_IMAGE_ELEMENTS_ENV} must be an integer, got {value!r}") from None
    if limit < 1:
        raise ConfigError(f"${MAX_IMAGE_ELEMENTS_ENV} must be >= 1, got {limit}")
    return limit


def check_image_size(shape: Sequence[int], path: str, what: str = "image") -> None:
    """Refuse an empty or too large image from its header's dimensions (ImageReadError)."""
    dims = [int(d) for d in shape]
    if any(d <= 0 for d in dims):
        raise ImageReadError(f"{path}: the {what} has no pixels (dimensions {dims})")
    count = 1
    for d in dims:
        count *= d
    limit = max_image_elements()
    if count > limit:
        raise ImageReadError(
            f"{path}: the {what} has {count} pixels/voxels (dimensions {dims}), more than the "
            f"limit of {limit} (${MAX_IMAGE_ELEMENTS_ENV}); refused before reading the pixels"
        )


def check_file(path: str) -> None:
    """Raise ImageReadError unless `path` is an existing, readable regular file."""
    if not os.path.exists(path):
        raise ImageReadError(f"{path}: no such file or directory")
    if not os.path.isfile(path):
        raise ImageReadError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise ImageReadError(f"{path}: permission denied")


def read_head(path: str, n: int = 512) -> bytes:
    """The first `n` bytes of a file, for format sniffing."""
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise ImageReadError(f"{path}: cannot read ({e.strerror or e})") from e


def normalize_spacing_arg(spacing: SpacingArg, ndim: int, path: str) -> tuple[float, ...] | None:
    """The user's `spacing` argument as `ndim` floats in array-axis order.

    One number means the same spacing on every axis; otherwise there must be
    exactly one value per array axis.
    """
    if spacing is None:
        return None
    values = np.atleast_1d(np.asarray(spacing, dtype=np.float64)).reshape(-1)
    if values.size == 1:
        values = np.repeat(values, ndim)
    if values.size != ndim:
        raise ConfigError(
            f"{path}: spacing needs 1 or {ndim} values for a {ndim}D image "
            f"(array-axis order), got {list(np.atleast_1d(spacing))}"
        )
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ConfigError(f"{path}: spacing must be finite and > 0, got {values.tolist()}")
    return tuple(float(v) for v in values)


def resolve_spacing(
    file_spacing: Sequence[float | None],
    spacing_arg: SpacingArg,
    path: str,
) -> tuple[tuple[float, ...], str]:
    """Combine what the file says with the user's argument.

    Args:
      file_spacing: per array axis, the spacing the file states, or None where
        it states none (or states nonsense such as 0).
      spacing_arg: the caller's `spacing` argument; it wins when given.
      path: named in the warning.

    Returns:
      (spacing, source) with source 'argument', 'file' or 'default'. Missing
      values default to 1.0 mm with a warning, because a silent 1.0 makes every
      millimetre error wrong without anyone noticing.
    """
    ndim = len(file_spacing)
    arg = normalize_spacing_arg(spacing_arg, ndim, path)
    if arg is not None:
        return arg, "argument"
    if all(s is not None for s in file_spacing):
        return tuple(float(s) for s in file_spacing), "file"
    missing = [axis for axis, s in enumerate(file_spacing) if s is None]
    warnings.warn(
        f"{path}: the file states no spacing for array axes {missing} "
        f"(of {ndim}); using 1.0 mm there. "
        "Pass the real spacing (spacing=..., or --spacing on the commands).",
        UserWarning,
        stacklevel=3,
    )
    return tuple(1.0 if s is None else float(s) for s in file_spacing), "default"


def valid_spacing(value) -> float | None:
    """`value` as a positive finite float, or None when it is not one."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """Luminance of [..., 3] (or [..., 4] with alpha) data, in the input's dtype.

    Integer data is rounded back to its own type: the weights sum to one, so the
    result always fits.
    """
    lum = np.asarray(rgb[..., :3], dtype=np.float64) @ LUMA_WEIGHTS
    if np.issubdtype(rgb.dtype, np.integer):
        info = np.iinfo(rgb.dtype)
        return np.clip(np.rint(lum), info.min, info.max).astype(rgb.dtype)
    return lum.astype(rgb.dtype)


def orthonormalize(direction: np.ndarray, path: str, what: str) -> np.ndarray:
    """Nearest orthonormal matrix to `direction`, or ImageReadError if it is sheared.

    Files store direction cosines with a few significant digits (DICOM DS,
    float32 NIfTI affines); the polar decomposition removes that noise so that
    world_to_index is exact, while a real shear is refused rather than hidden.
    """
    d = np.asarray(direction, dtype=np.float64)
    if not np.all(np.isfinite(d)):
        raise ImageReadError(f"{path}: {what} is not finite: {d.tolist()}")
    if not np.allclose(d.T @ d, np.eye(d.shape[0]), atol=1e-3):
        raise ImageReadError(
            f"{path}: {what} is not orthonormal (sheared or degenerate axes): "
            f"{np.round(d, 6).tolist()}"
        )
    u, _, vt = np.linalg.svd(d)
    return u @ vt
