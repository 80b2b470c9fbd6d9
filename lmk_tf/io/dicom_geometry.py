"""Slice-stack geometry shared by DICOM series and multi-frame DICOM files.

DICOM describes each slice by ImageOrientationPatient (IOP: the world
direction of increasing column index, then of increasing row index) and
ImagePositionPatient (IPP: the world centre of the slice's first pixel). A
volume is made by ordering the slices along the normal ``n = IOP[:3] x IOP[3:]``
and measuring the step between their positions, never by trusting
SliceThickness: slices may overlap or leave gaps, and thickness says nothing
about either.

In the package's array-axis order ``[slice, row, col]`` the direction columns
are therefore ``[n, IOP[3:], IOP[:3]]``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np

from lmk_tf.errors import ImageReadError
from lmk_tf.io.common import orthonormalize

# Relative deviation of one slice step from the mean step that still counts as
# even: DS values carry ~6 significant digits, a missing slice doubles a step.
UNEVEN_TOLERANCE = 0.01


def _tag_numbers(value, count: int, tag: str, path: str) -> np.ndarray:
    """`count` finite numbers from a multi-valued DICOM tag, or an error naming it."""
    try:
        v = np.asarray([float(x) for x in value], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ImageReadError(f"{path}: {tag} is not numeric: {value!r}") from e
    if v.shape != (count,) or not np.all(np.isfinite(v)):
        raise ImageReadError(f"{path}: {tag} needs {count} numbers, got {list(value)}")
    return v


def parse_iop(iop, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(row_direction, column_direction) unit vectors from an IOP value."""
    v = _tag_numbers(iop, 6, "ImageOrientationPatient", path)
    return v[:3], v[3:]


def parse_ipp(ipp, path: str) -> np.ndarray:
    """A 3-vector from an ImagePositionPatient value."""
    return _tag_numbers(ipp, 3, "ImagePositionPatient", path)


def volume_direction(iop, path: str) -> np.ndarray:
    """3x3 direction (columns = world direction of array axes slice, row, col)."""
    row_dir, col_dir = parse_iop(iop, path)
    normal = np.cross(row_dir, col_dir)
    return orthonormalize(
        np.stack([normal, col_dir, row_dir], axis=1), path, "ImageOrientationPatient"
    )


@dataclasses.dataclass
class StackGeometry:
    """How to order slices and how far apart they are."""

    order: np.ndarray  # indices into the input slices, first slice first
    slice_spacing: float | None  # None for a single slice
    origin: np.ndarray  # IPP of the first slice after ordering
    uneven: bool


def stack_geometry(
    positions: np.ndarray,
    direction: np.ndarray,
    labels: Sequence[str],
    path: str,
    allow_uneven_slices: bool,
) -> StackGeometry:
    """Order slices along the normal and check they form a regular grid.

    Args:
      positions: [N, 3] ImagePositionPatient of each slice.
      direction: from `volume_direction`; column 0 is the slice normal.
      labels: a name per slice (file name or frame number) for error messages.
      path: the file or directory being read.
      allow_uneven_slices: accept uneven steps (a warning, mean spacing) instead
        of raising ImageReadError.
    """
    positions = np.asarray(positions, dtype=np.float64)
    normal = direction[:, 0]
    proj = positions @ normal
    order = np.argsort(proj, kind="stable")
    proj = proj[order]
    if len(order) == 1:
        return StackGeometry(order, None, positions[order[0]], False)

    steps = np.diff(proj)
    tiny = steps < 1e-4
    if np.any(tiny):
        i = int(np.argmax(tiny))
        raise ImageReadError(
            f"{path}: slices {labels[order[i]]} and {labels[order[i + 1]]} lie at the same "
            f"position {np.round(positions[order[i]], 4).tolist()} (several stacks, echoes "
            "or time points in one series?)"
        )
    mean_step = float((proj[-1] - proj[0]) / (len(proj) - 1))

    # In-plane drift between slices (gantry tilt) would need a sheared grid,
    # which the Image type cannot represent.
    in_plane = np.diff(positions[order], axis=0) - steps[:, None] * normal[None, :]
    drift = np.linalg.norm(in_plane, axis=1)
    if np.any(drift > 0.01 + UNEVEN_TOLERANCE * steps):
        i = int(np.argmax(drift))
        raise ImageReadError(
            f"{path}: slice {labels[order[i + 1]]} is shifted {drift[i]:.3f} mm in-plane from "
            f"{labels[order[i]]} (tilted gantry?); sheared volumes are not supported"
        )

    deviation = np.abs(steps - mean_step) / mean_step
    uneven = bool(np.any(deviation > UNEVEN_TOLERANCE))
    if uneven:
        i = int(np.argmax(deviation))
        detail = (
            f"slice steps range from {steps.min():.4g} to {steps.max():.4g} mm "
            f"(mean {mean_step:.4g} mm; largest deviation between {labels[order[i]]} and "
            f"{labels[order[i + 1]]}: {steps[i]:.4g} mm)"
        )
        if not allow_uneven_slices:
            raise ImageReadError(
                f"{path}: uneven slice spacing, {detail}; a slice may be missing. "
                "Pass allow_uneven_slices=True to use the mean spacing anyway"
            )
        warnings.warn(
            f"{path}: uneven slice spacing, {detail}; using the mean spacing",
            UserWarning,
            stacklevel=3,
        )
    return StackGeometry(order, mean_step, positions[order[0]], uneven)
