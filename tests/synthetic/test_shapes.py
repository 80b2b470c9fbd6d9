"""Signed distance functions: zero on the boundary, the sign, and exact distances where promised."""

import math

import numpy as np
import pytest

from lmk_tf.synthetic.shapes import Box, Cone, Cut, Ellipsoid, Polygon, Rod, Shell, Union


def _sdf(shape, *points):
    """The shape's SDF at points given as rows (template mm, array-axis order)."""
    q = [np.array(axis, np.float64) for axis in zip(*points)]
    return shape.sdf(q)


@pytest.mark.parametrize(
    "shape, points, expected",
    [
        # Circles and spheres are exact; the centre is minus the radius.
        (Ellipsoid(np.zeros(2), np.array([5.0, 5.0])), [(5, 0), (0, 8), (0, 0)], [0.0, 3.0, -5.0]),
        (Ellipsoid(np.zeros(3), np.array([2.0, 2.0, 2.0])), [(0, 0, 3), (1, 0, 0)], [1.0, -1.0]),
        # A ring of thickness 1 inside radius 5: negative only within the band.
        (Shell(np.zeros(2), np.array([5.0, 5.0]), 1.0), [(4.5, 0), (0, 0), (6, 0)], [-0.5, 4.0, 1.0]),
        # Corners are sharp: the distance outside a corner is Euclidean.
        (Box(np.zeros(2), np.array([2.0, 3.0])), [(2, 3), (5, 7), (0, 0)], [0.0, 5.0, -2.0]),
        # A non-convex L-shape: its notch is outside; beyond a corner the distance is to the corner.
        (
            Polygon(np.array([[0.0, 0.0], [0.0, 4.0], [2.0, 4.0], [2.0, 2.0], [4.0, 2.0], [4.0, 0.0]])),
            [(3, 3.5), (1, 1), (0, 2), (-3, 0), (5, -1)],
            [1.0, -1.0, 0.0, 3.0, math.sqrt(2.0)],
        ),
        # The cone's apex is a point of the surface; behind it, the distance is to the apex.
        (Cone(np.zeros(3), np.array([10.0, 0.0, 0.0]), 5.0), [(0, 0, 0), (-3, 0, 0), (10, 0, 0)], [0.0, 3.0, 0.0]),
        (Rod(np.zeros(3), np.array([10.0, 0.0, 0.0]), 2.0), [(5, 2, 0), (5, 0, 0), (12, 0, 0)], [0.0, -2.0, 2.0]),
    ],
)
def test_known_distances(shape, points, expected):
    np.testing.assert_allclose(_sdf(shape, *points), expected, atol=1e-9)


def test_cone_is_inside_along_its_axis():
    cone = Cone(np.zeros(3), np.array([10.0, 0.0, 0.0]), 5.0)
    assert np.all(_sdf(cone, (2, 0, 0), (5, 1, 0), (9.5, 4, 0)) < 0)
    assert np.all(_sdf(cone, (2, 2, 0), (10.5, 0, 0)) > 0)


def test_union_and_cut_combine_and_bound():
    left, right = Box(np.array([0.0, -3.0]), np.ones(2)), Box(np.array([0.0, 3.0]), np.ones(2))
    both = Union((left, right))
    np.testing.assert_allclose(_sdf(both, (0, -3), (0, 3), (0, 0)), [-1.0, -1.0, 2.0])
    np.testing.assert_array_equal(np.stack(both.bounds()), [[-1.0, -4.0], [1.0, 4.0]])
    # Cut keeps q[0] <= 0.5: the part beyond is outside by its distance to the plane.
    cut = Cut(left, 0, 0.5)
    np.testing.assert_allclose(_sdf(cut, (0.75, -3), (0, -3), (-0.5, -3)), [0.25, -0.5, -0.5])
    np.testing.assert_array_equal(np.stack(cut.bounds()), [[-1.0, -4.0], [0.5, -2.0]])
