"""Drawing structures into the pixel grid, and the smooth intensity inhomogeneity."""

from __future__ import annotations

import itertools

import numpy as np


def _coverage(d, width):
    """Smooth partial-volume coverage: 1 inside, 0 outside, exactly 0.5 on the boundary.

    A smoothstep over [-width, width] rather than a sigmoid, so that the
    support is compact and structures can be rendered in their bounding box.
    """
    t = np.clip(0.5 - d * (0.5 / width), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def render(image, shape, value, xf, edge_px, additive):
    """Draw one structure into `image` in place, only within its bounding box."""
    lo, hi = shape.bounds()
    corners = np.array(list(itertools.product(*zip(lo, hi))))
    idx = xf.to_index(corners)
    # The edge reaches edge_px pixels (in the finest axis) beyond the boundary.
    margin = edge_px + 1.0
    start = np.maximum(np.floor(idx.min(axis=0) - margin), 0).astype(int)
    stop = np.minimum(np.ceil(idx.max(axis=0) + margin) + 1, image.shape).astype(int)
    if np.any(stop <= start):
        return
    q = xf.template_grid(start, stop)
    width = edge_px * float(xf.spacing.min()) / xf.scale  # template mm
    c = _coverage(shape.sdf(q), width).astype(np.float32)
    region = image[tuple(slice(s, e) for s, e in zip(start, stop))]
    c = np.broadcast_to(c, region.shape)
    if additive:
        region += np.float32(value) * c
    else:
        region += c * (np.float32(value) - region)


def inhomogeneity_field(shape, coeffs):
    """1 + linear + quadratic terms over [-1, 1] per axis, clipped to [0.5, 1.5]."""
    ndim = len(shape)
    axes = []
    for a, n in enumerate(shape):
        view = [1] * ndim
        view[a] = -1
        axes.append(np.linspace(-1.0, 1.0, n, dtype=np.float32).reshape(view))
    field = np.float32(1.0)
    for a in range(ndim):
        field = field + float(coeffs[a]) * axes[a] + float(coeffs[ndim + a]) * (axes[a] ** 2 - 0.33)
    field = field + float(coeffs[-1]) * axes[0] * axes[1]
    return np.clip(np.broadcast_to(field, shape), 0.5, 1.5).astype(np.float32)

