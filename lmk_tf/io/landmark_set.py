"""The landmark set: named points in index or world space, missing ones as NaN rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from lmk_tf.errors import ConfigError

SPACES = ("index", "world")


@dataclasses.dataclass
class Landmarks:
    """Named points, missing ones as NaN rows.

    Attributes:
      names: one unique name per landmark.
      points: float64 [L, ndim]; array-axis order in 'index' space, LPS (x, y[, z])
        in 'world' space.
      space: 'index' or 'world'.
    """

    names: list[str]
    points: np.ndarray
    space: str = "index"

    def __post_init__(self):
        self.names = [str(n) for n in self.names]
        points = np.asarray(self.points, dtype=np.float64)
        if points.ndim == 1 and points.size == 0:
            points = points.reshape(0, 2)
        if points.ndim != 2 or points.shape[1] not in (2, 3):
            raise ConfigError(f"landmark points must have shape [L, 2] or [L, 3], got {points.shape}")
        if points.shape[0] != len(self.names):
            raise ConfigError(f"{len(self.names)} landmark names for {points.shape[0]} points")
        if len(set(self.names)) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ConfigError(f"landmark names must be unique, repeated: {dup}")
        if self.space not in SPACES:
            raise ConfigError(f"landmark space must be one of {SPACES}, got {self.space!r}")
        finite = np.isfinite(points)
        partial = finite.any(axis=1) & ~finite.all(axis=1)
        if np.any(partial):
            i = int(np.argmax(partial))
            raise ConfigError(
                f"landmark {self.names[i]!r} has some but not all coordinates: {points[i].tolist()}"
            )
        points[~finite.all(axis=1)] = np.nan
        self.points = points

    @property
    def ndim(self) -> int:
        return self.points.shape[1]

    @property
    def present(self) -> np.ndarray:
        """bool [L]: which landmarks have a position."""
        return np.all(np.isfinite(self.points), axis=1)

    def __len__(self) -> int:
        return len(self.names)

    def position(self, name: str) -> np.ndarray:
        """The point of landmark `name` (NaNs if missing)."""
        try:
            return self.points[self.names.index(name)]
        except ValueError:
            raise ConfigError(f"no landmark named {name!r}; have {self.names}") from None

    def reindex(self, names: Sequence[str]) -> Landmarks:
        """These landmarks in the order of `names`; names not held become missing."""
        lookup = dict(zip(self.names, self.points))
        points = np.array([lookup.get(n, np.full(self.ndim, np.nan)) for n in names]).reshape(
            len(names), self.ndim
        )
        return Landmarks(list(names), points, self.space)

    def _check_image(self, image) -> None:
        if image.ndim != self.ndim:
            raise ConfigError(
                f"{self.ndim}D landmarks do not fit a {image.ndim}D image of shape {list(image.shape)}"
            )

    def to_index(self, image) -> Landmarks:
        """These landmarks in `image`'s continuous index space."""
        self._check_image(image)
        if self.space == "index":
            return Landmarks(list(self.names), self.points.copy(), "index")
        return Landmarks(list(self.names), image.world_to_index(self.points), "index")

    def to_world(self, image) -> Landmarks:
        """These landmarks in LPS world mm, using `image`'s geometry."""
        self._check_image(image)
        if self.space == "world":
            return Landmarks(list(self.names), self.points.copy(), "world")
        return Landmarks(list(self.names), image.index_to_world(self.points), "world")
