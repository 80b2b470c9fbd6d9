"""The rasteriser: a rendered corner is exactly the transformed vertex, with partial volume."""

import math

import numpy as np
import pytest

from lmk_tf.synthetic.placement import Transform
from lmk_tf.synthetic.rendering import render
from lmk_tf.synthetic.shapes import Polygon


def _bilinear(image, point):
    (r, c), (i, j) = point - np.floor(point), np.floor(point).astype(int)
    block = image[i : i + 2, j : j + 2]
    return (
        block[0, 0] * (1 - r) * (1 - c)
        + block[0, 1] * (1 - r) * c
        + block[1, 0] * r * (1 - c)
        + block[1, 1] * r * c
    )


def _fit_edge(coverage, start, along, normal):
    """Boundary points (0.5 crossings) along an edge; returns (point on line, direction)."""
    found = []
    for s in np.arange(5.0, 15.0, 0.5):
        base = start + s * along
        offsets = np.linspace(-3.0, 3.0, 121)
        values = np.array([_bilinear(coverage, base + t * normal) for t in offsets])
        k = np.nonzero((values[:-1] - 0.5) * (values[1:] - 0.5) <= 0)[0][0]
        t = offsets[k] + (0.5 - values[k]) / (values[k + 1] - values[k]) * (offsets[1] - offsets[0])
        found.append(base + t * normal)
    found = np.array(found)
    centre = found.mean(axis=0)
    direction = np.linalg.svd(found - centre)[2][0]
    return centre, direction


@pytest.mark.parametrize("angle_deg, scale", [(0.0, 1.0), (12.0, 0.9), (-14.0, 1.13)])
def test_rendered_corner_is_the_landmark(angle_deg, scale):
    # A square through the generator's own transform and rasteriser; its
    # corner, measured from the image by intersecting the two fitted edges,
    # must be the transformed vertex (pixel-centre convention, rotation
    # direction and scale all included).
    shape, spacing = (64, 64), np.array([1.0, 1.0])
    a = math.radians(angle_deg)
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    xf = Transform(
        rotation * scale, np.array([1.37, -2.71]), (np.array(shape) - 1) / 2, spacing, scale
    )
    corner = np.array([-10.0, -12.0])
    square = Polygon(
        np.array([corner, corner + [0.0, 25.0], corner + [25.0, 25.0], corner + [25.0, 0.0]])
    )
    coverage = np.zeros(shape, np.float32)
    # A 2-pixel edge keeps the bilinear 0.5-crossing (the measurement) unbiased;
    # the corner's exactness does not depend on the edge width.
    render(coverage, square, 1.0, xf, 2.0, additive=True)
    expected = xf.to_index(corner[None])[0]
    # The two edges leave the corner along the transformed template axes.
    along_rows = rotation @ [1.0, 0.0]
    along_cols = rotation @ [0.0, 1.0]
    c1, d1 = _fit_edge(coverage, expected, along_rows, along_cols)
    c2, d2 = _fit_edge(coverage, expected, along_cols, along_rows)
    # Intersect c1 + u d1 = c2 + v d2.
    u, _ = np.linalg.solve(np.stack([d1, -d2], axis=1), c2 - c1)
    measured = c1 + u * d1
    assert np.linalg.norm(measured - expected) < 0.03, (measured, expected)
    # Partial volume: the total coverage is the square's area in pixels (with
    # a narrow edge: wide edges round the corners off, by about edge_px^2).
    coverage[:] = 0.0
    render(coverage, square, 1.0, xf, 0.5, additive=True)
    assert abs(coverage.sum() - (25.0 * scale) ** 2) < 0.5
