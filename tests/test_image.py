"""The Image type: validation and the world <-> index mapping."""

import numpy as np
import pytest

from lmk_tf.errors import ConfigError
from lmk_tf.image import Image


def _rotation(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_index_to_world_follows_the_documented_formula():
    d = _rotation(0.7)
    image = Image(np.zeros((4, 5, 6)), (2.0, 0.5, 0.25), (1.0, 2.0, 3.0), d)
    idx = np.array([1.5, 2.0, -0.5])
    expected = np.array([1.0, 2.0, 3.0]) + d @ (np.array([2.0, 0.5, 0.25]) * idx)
    np.testing.assert_allclose(image.index_to_world(idx), expected)


def test_world_index_round_trip_for_batches():
    image = Image(np.zeros((4, 5, 6)), (2.0, 0.5, 0.25), (1.0, 2.0, 3.0), _rotation(-1.1)[:, [2, 0, 1]])
    idx = np.random.default_rng(0).uniform(-1, 6, size=(7, 3))
    np.testing.assert_allclose(image.world_to_index(image.index_to_world(idx)), idx, atol=1e-12)


def test_2d_defaults():
    image = Image(np.zeros((3, 4)), [0.1, 0.2])
    assert image.origin == (0.0, 0.0)
    # ITK's identity: columns run along world x, rows along world y.
    np.testing.assert_array_equal(image.direction, [[0, 1], [1, 0]])
    np.testing.assert_allclose(image.index_to_world([[2, 3]]), [[0.6, 0.2]])
    assert image.geometry()["spacing"] == [0.1, 0.2]


def test_contains_index_includes_pixel_edges():
    image = Image(np.zeros((3, 4)), (1, 1))
    inside = image.contains_index([[-0.5, -0.5], [2.5, 3.5], [-0.6, 0], [0, 3.6], [np.nan, 1]])
    assert inside.tolist() == [True, True, False, False, False]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(array=np.zeros(5), spacing=(1,)), "2D or 3D"),
        (dict(array=np.zeros((2, 2)), spacing=(1, 1, 1)), "spacing must have 2 values"),
        (dict(array=np.zeros((2, 2)), spacing=(1, 0)), "finite and > 0"),
        (dict(array=np.zeros((2, 2)), spacing=(1, 1), origin=(0, 0, 0)), "origin must have 2"),
        (dict(array=np.zeros((2, 2)), spacing=(1, 1), direction=np.eye(3)), "direction must be 2x2"),
    ],
)
def test_invalid_geometry_is_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Image(**kwargs)


def test_sheared_direction_is_refused_even_with_unit_determinant():
    # det = 1 but columns are not orthogonal: world_to_index would be wrong.
    sheared = np.array([[1.0, 0.5], [0.0, 1.0]])
    assert np.isclose(np.linalg.det(sheared), 1.0)
    with pytest.raises(ConfigError, match="orthonormal"):
        Image(np.zeros((2, 2)), (1, 1), direction=sheared)


def test_left_handed_direction_is_allowed():
    flip = np.diag([1.0, -1.0, 1.0])
    image = Image(np.zeros((2, 2, 2)), (1, 1, 1), direction=flip)
    np.testing.assert_allclose(image.index_to_world([0, 1, 0]), [0, -1, 0])
