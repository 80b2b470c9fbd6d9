"""Signed distance functions of the structures a layout is drawn with.

Template coordinates q are a list of ndim arrays (broadcastable), in mm;
negative inside. Only the zero level set needs to be exact (it is), the
distances near it only need to be close, because they set the width of the
soft edge.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Ellipsoid:
    """Solid ellipse/ellipsoid; exact for circles/spheres."""

    centre: np.ndarray
    semi_axes: np.ndarray

    def sdf(self, q):
        d = [qk - float(c) for qk, c in zip(q, self.centre)]
        k0 = np.sqrt(sum((dk / float(a)) ** 2 for dk, a in zip(d, self.semi_axes)))
        k1 = np.sqrt(sum((dk / float(a) ** 2) ** 2 for dk, a in zip(d, self.semi_axes)))
        # First-order distance k0 (k0 - 1) / k1 (|grad| normalised); at the
        # centre k1 = 0 and the distance is minus the smallest semi-axis.
        return np.where(
            k1 > 1e-6, k0 * (k0 - 1.0) / np.maximum(k1, 1e-6), -float(np.min(self.semi_axes))
        )

    def bounds(self):
        return self.centre - self.semi_axes, self.centre + self.semi_axes


@dataclasses.dataclass(frozen=True)
class Shell:
    """Ellipse ring / ellipsoid shell of a given thickness (inward)."""

    centre: np.ndarray
    semi_axes: np.ndarray
    thickness: float

    def sdf(self, q):
        outer = Ellipsoid(self.centre, self.semi_axes).sdf(q)
        inner = Ellipsoid(self.centre, self.semi_axes - self.thickness).sdf(q)
        return np.maximum(outer, -inner)

    def bounds(self):
        return self.centre - self.semi_axes, self.centre + self.semi_axes


@dataclasses.dataclass(frozen=True)
class Polygon:
    """Simple (possibly non-convex) 2D polygon; exact distance."""

    vertices: np.ndarray  # [V, 2], array-axis order (row, col)

    def sdf(self, q):
        r, c = q
        v = self.vertices
        d2 = (r - float(v[0, 0])) ** 2 + (c - float(v[0, 1])) ** 2
        inside = np.zeros((), bool)
        for i in range(len(v)):
            j = i - 1
            vr, vc = float(v[i, 0]), float(v[i, 1])
            er, ec = float(v[j, 0]) - vr, float(v[j, 1]) - vc
            wr, wc = r - vr, c - vc
            t = np.clip((wr * er + wc * ec) / (er * er + ec * ec), 0.0, 1.0)
            br, bc = wr - er * t, wc - ec * t
            d2 = np.minimum(d2, br * br + bc * bc)
            # Crossing-number parity along the column axis for the sign.
            c1 = r >= vr
            c2 = r < float(v[j, 0])
            c3 = ec * wr > er * wc
            inside = inside ^ ((c1 & c2 & c3) | (~c1 & ~c2 & ~c3))
        return np.where(inside, -1.0, 1.0) * np.sqrt(d2)

    def bounds(self):
        return self.vertices.min(axis=0), self.vertices.max(axis=0)


@dataclasses.dataclass(frozen=True)
class Box:
    """Axis-aligned (in the template) box with sharp corners; exact distance."""

    centre: np.ndarray
    half: np.ndarray

    def sdf(self, q):
        d = [np.abs(qk - float(c)) - float(h) for qk, c, h in zip(q, self.centre, self.half)]
        outside = np.sqrt(sum(np.maximum(dk, 0.0) ** 2 for dk in d))
        inside = d[0]
        for dk in d[1:]:
            inside = np.maximum(inside, dk)
        return outside + np.minimum(inside, 0.0)

    def bounds(self):
        return self.centre - self.half, self.centre + self.half


def _axial(q, start, end):
    """Axial coordinate h along start->end, radial distance r, and length."""
    axis = end - start
    length = float(np.linalg.norm(axis))
    u = axis / length
    d = [qk - float(s) for qk, s in zip(q, start)]
    h = sum(dk * float(uk) for dk, uk in zip(d, u))
    r2 = sum(dk * dk for dk in d) - h * h
    return h, np.sqrt(np.maximum(r2, 0.0)), length


@dataclasses.dataclass(frozen=True)
class Cone:
    """Solid cone from a sharp apex to a flat base disc."""

    apex: np.ndarray
    base: np.ndarray
    radius: float

    def sdf(self, q):
        h, r, length = _axial(q, self.apex, self.base)
        hyp = math.hypot(length, self.radius)
        cos_t, sin_t = length / hyp, self.radius / hyp
        lateral = r * cos_t - h * sin_t
        # Points 'behind' the apex are nearest to the apex itself.
        behind = h * cos_t + r * sin_t < 0
        lateral = np.where(behind, np.sqrt(h * h + r * r), lateral)
        return np.maximum(lateral, h - length)

    def bounds(self):
        pad = self.radius
        lo = np.minimum(self.apex, self.base - pad)
        hi = np.maximum(self.apex, self.base + pad)
        return lo, hi


@dataclasses.dataclass(frozen=True)
class Rod:
    """Solid cylinder with flat ends."""

    start: np.ndarray
    end: np.ndarray
    radius: float

    def sdf(self, q):
        h, r, length = _axial(q, self.start, self.end)
        return np.maximum(r - self.radius, np.maximum(-h, h - length))

    def bounds(self):
        pad = self.radius
        return np.minimum(self.start, self.end) - pad, np.maximum(self.start, self.end) + pad


@dataclasses.dataclass(frozen=True)
class Union:
    parts: tuple

    def sdf(self, q):
        out = self.parts[0].sdf(q)
        for part in self.parts[1:]:
            out = np.minimum(out, part.sdf(q))
        return out

    def bounds(self):
        los, his = zip(*(p.bounds() for p in self.parts))
        return np.min(los, axis=0), np.max(his, axis=0)


@dataclasses.dataclass(frozen=True)
class Cut:
    """`shape` restricted to the half-space q[axis] <= limit."""

    shape: object
    axis: int
    limit: float

    def sdf(self, q):
        return np.maximum(self.shape.sdf(q), q[self.axis] - self.limit)

    def bounds(self):
        lo, hi = self.shape.bounds()
        hi = hi.copy()
        hi[self.axis] = min(hi[self.axis], self.limit)
        return lo, hi

