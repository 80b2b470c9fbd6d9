"""One image type for 2D X-rays and 3D volumes, with its geometry.

Conventions (the same everywhere in the package):

* ``array`` is indexed in *array-axis order*: ``[row, col]`` in 2D and
  ``[slice, row, col]`` in 3D, exactly like SimpleITK's numpy view.
* ``spacing`` is mm per pixel/voxel in that same order.
* ``origin`` is the world position (mm) of the centre of the first
  pixel/voxel, in LPS world axes ``(x, y[, z])`` as DICOM and ITK use.
* ``direction`` is an ``ndim x ndim`` matrix whose column ``a`` is the world
  unit vector along array axis ``a``. (ITK stores the columns in the reverse,
  ``(i, j, k) = (col, row, slice)`` order; readers flip them.)

Then for a continuous index ``idx`` (array-axis order)::

    world = origin + direction @ (spacing * idx)

RAS files (NIfTI) are converted on reading by negating the first two world
axes, so world coordinates are always LPS.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lmk_tf.errors import ConfigError


@dataclasses.dataclass
class Image:
    """A 2D or 3D image with physical geometry.

    Attributes:
      array: pixel/voxel values, ndim 2 or 3, array-axis order.
      spacing: mm per pixel/voxel, array-axis order, all > 0.
      origin: LPS world position of the first pixel centre (mm), length ndim.
      direction: ndim x ndim, column a = world direction of array axis a;
        default ITK's identity (columns along x, rows along y, slices along z).
      meta: free-form facts about where the image came from (file, modality,
        the DICOM tags the geometry was taken from, ...).
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    origin: tuple[float, ...] | None = None
    direction: np.ndarray | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.array = np.asarray(self.array)
        ndim = self.array.ndim
        if ndim not in (2, 3):
            raise ConfigError(
                f"image must be 2D or 3D, got an array of shape {self.array.shape}"
            )
        spacing = np.asarray(self.spacing, dtype=np.float64).reshape(-1)
        if spacing.shape != (ndim,):
            raise ConfigError(
                f"spacing must have {ndim} values for a {ndim}D image, got {list(spacing)}"
            )
        if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
            raise ConfigError(f"spacing must be finite and > 0, got {list(spacing)}")
        self.spacing = tuple(float(s) for s in spacing)
        origin = np.zeros(ndim) if self.origin is None else np.asarray(self.origin, np.float64)
        if origin.shape != (ndim,):
            raise ConfigError(f"origin must have {ndim} values, got {list(origin)}")
        self.origin = tuple(float(o) for o in origin)
        # Default: ITK's identity, i.e. columns along world x, rows along y and
        # slices along z, which in array-axis order is the reversed identity.
        direction = (
            np.eye(ndim)[::-1] if self.direction is None else np.asarray(self.direction, np.float64)
        )
        if direction.shape != (ndim, ndim):
            raise ConfigError(
                f"direction must be {ndim}x{ndim}, got shape {direction.shape}"
            )
        # A determinant of +-1 alone lets sheared matrices through, and
        # world_to_index relies on the inverse being the transpose.
        if not np.all(np.isfinite(direction)) or not np.allclose(
            direction.T @ direction, np.eye(ndim), atol=1e-3
        ):
            raise ConfigError(f"direction must be orthonormal, got {direction.tolist()}")
        self.direction = direction

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def index_to_world(self, index) -> np.ndarray:
        """Continuous indices [..., ndim] (array-axis order) -> LPS world mm."""
        idx = np.asarray(index, dtype=np.float64)
        scaled = idx * np.asarray(self.spacing)
        return scaled @ self.direction.T + np.asarray(self.origin)

    def world_to_index(self, world) -> np.ndarray:
        """LPS world mm [..., ndim] -> continuous indices (array-axis order)."""
        w = np.asarray(world, dtype=np.float64) - np.asarray(self.origin)
        # direction is orthonormal, so its inverse is its transpose.
        return (w @ self.direction) / np.asarray(self.spacing)

    def contains_index(self, index) -> np.ndarray:
        """Whether continuous indices lie inside the pixel grid (edges included)."""
        idx = np.asarray(index, dtype=np.float64)
        upper = np.asarray(self.shape, dtype=np.float64) - 0.5
        return np.all((idx >= -0.5) & (idx <= upper), axis=-1) & np.all(
            np.isfinite(idx), axis=-1
        )

    def geometry(self) -> dict[str, Any]:
        """Geometry as plain JSON-able values."""
        return {
            "shape": list(self.shape),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": self.direction.tolist(),
        }
