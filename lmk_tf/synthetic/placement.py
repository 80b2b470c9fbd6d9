"""Where a layout goes: its pose (rotation, scale, translation) and the index mapping."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np


@dataclasses.dataclass
class Transform:
    """Template mm -> continuous index: centre + (matrix @ q + translation) / spacing."""

    matrix: np.ndarray
    translation: np.ndarray
    centre_index: np.ndarray
    spacing: np.ndarray
    scale: float  # template mm -> physical mm (the matrix is scale * rotation)

    def to_index(self, q):
        q = np.asarray(q, np.float64)
        return self.centre_index + (q @ self.matrix.T + self.translation) / self.spacing

    def template_grid(self, start, stop):
        """Template coordinates of the pixel centres in [start, stop) (broadcastable)."""
        ndim = len(start)
        inverse = np.linalg.inv(self.matrix)
        axes = []
        for a in range(ndim):
            idx = np.arange(start[a], stop[a], dtype=np.float64)
            mm = (idx - self.centre_index[a]) * self.spacing[a] - self.translation[a]
            view = [1] * ndim
            view[a] = -1
            axes.append(mm.astype(np.float32).reshape(view))
        # float32 keeps 1e-5 mm precision here and halves the memory traffic.
        return [sum(axes[a] * float(inverse[k, a]) for a in range(ndim)) for k in range(ndim)]


def rotation_matrix(ndim, angles_deg):
    """Rotation by angles_deg[0] in 2D; about each array axis in turn in 3D."""
    a = np.deg2rad(angles_deg)
    if ndim == 2:
        c, s = math.cos(a[0]), math.sin(a[0])
        return np.array([[c, -s], [s, c]])
    rotations = []
    for axis, angle in enumerate(a):
        c, s = math.cos(angle), math.sin(angle)
        i, j = [k for k in range(3) if k != axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        rotations.append(m)
    return rotations[0] @ rotations[1] @ rotations[2]


def _interval(positions, half_fov, margin):
    """Translations t keeping all positions in [-half_fov + margin, half_fov - margin]."""
    if len(positions) == 0:
        return -math.inf, math.inf
    return -half_fov + margin - positions.min(), half_fov - margin - positions.max()


def place_layout(points_mm, fov, config, u):
    """Translation (mm) of the layout, and the index of the landmark put outside."""
    ndim = points_mm.shape[1]
    half = fov / 2.0  # the pixel grid covers [-half, half] around the centre
    u_out, u_margin, u_choice, u_axes = u[0], u[1], u[2], u[3:]

    def inside_translation(points):
        t = np.zeros(ndim)
        for a in range(ndim):
            lo, hi = _interval(points[:, a], half[a], config.inside_margin_frac * fov[a])
            limit = config.max_translation_frac * fov[a]
            if lo > hi:  # the layout is larger than the image: centre it
                lo = hi = (lo + hi) / 2.0
            elif lo > limit:  # keeping the landmarks inside needs more shift than allowed
                hi = lo
            elif hi < -limit:
                lo = hi
            else:
                lo, hi = max(lo, -limit), min(hi, limit)
            t[a] = lo + u_axes[a] * (hi - lo)
        return t

    if u_out < config.p_outside and len(points_mm) > 0:
        lo_frac, hi_frac = config.outside_margin_frac
        frac = lo_frac + u_margin * (hi_frac - lo_frac)
        candidates = []
        for l, a, side in itertools.product(range(len(points_mm)), range(ndim), (-1.0, 1.0)):
            others = np.delete(points_mm, l, axis=0)
            # Others keep a small margin only: a crop is allowed to come close.
            lo, hi = _interval(others[:, a], half[a], 0.015 * fov[a])
            t = side * (half[a] + frac * fov[a]) - points_mm[l, a]
            if lo <= t <= hi:
                candidates.append((l, a, t))
        if candidates:
            l, a, t_a = candidates[min(int(u_choice * len(candidates)), len(candidates) - 1)]
            t = inside_translation(np.delete(points_mm, l, axis=0))
            t[a] = t_a
            return t, l
    return inside_translation(points_mm), None
