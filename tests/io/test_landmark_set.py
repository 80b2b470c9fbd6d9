"""The Landmarks type: missing rows, validation, index <-> world, reindexing."""

import numpy as np
import pytest

from lmk_tf.errors import ConfigError
from lmk_tf.image import Image
from lmk_tf.io.landmarks import Landmarks

NAN = np.nan


def _oblique_image():
    c, s = np.cos(0.3), np.sin(0.3)
    direction = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return Image(np.zeros((10, 20, 30), np.int16), (2.0, 0.5, 0.7), (10.0, -20.0, 5.0), direction)


def test_present_mask_and_missing_rows():
    lm = Landmarks(["a", "b"], [[1.0, 2.0], [NAN, NAN]])
    assert lm.present.tolist() == [True, False]
    assert lm.ndim == 2 and len(lm) == 2
    assert lm.points.dtype == np.float64


@pytest.mark.parametrize(
    "names,points,space,match",
    [
        (["a"], [[1.0, NAN]], "index", "some but not all"),
        (["a", "a"], [[1.0, 2.0], [3.0, 4.0]], "index", "repeated"),
        (["a"], [[1.0, 2.0], [3.0, 4.0]], "index", "1 landmark names for 2 points"),
        (["a"], [[1.0, 2.0, 3.0, 4.0]], "index", r"shape \[L, 2\]"),
        (["a"], [[1.0, 2.0]], "pixels", "'pixels'"),
    ],
)
def test_invalid_landmarks_are_refused(names, points, space, match):
    with pytest.raises(ConfigError, match=match):
        Landmarks(names, points, space)


def test_index_world_round_trip_on_an_oblique_image():
    image = _oblique_image()
    lm = Landmarks(["p", "q", "gone"], [[1.0, 2.5, 3.25], [9.0, 0.0, 29.0], [NAN] * 3])
    world = lm.to_world(image)
    assert world.space == "world"
    np.testing.assert_allclose(world.points[0], image.index_to_world([1.0, 2.5, 3.25]))
    assert not world.present[2]
    back = world.to_index(image)
    np.testing.assert_allclose(back.points[:2], lm.points[:2], atol=1e-12)
    assert np.all(np.isnan(back.points[2]))


def test_dimension_mismatch_with_the_image():
    with pytest.raises(ConfigError, match="2D landmarks do not fit a 3D image"):
        Landmarks(["a"], [[1.0, 2.0]]).to_world(_oblique_image())


def test_reindex_orders_and_fills_missing():
    lm = Landmarks(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    out = lm.reindex(["b", "z", "a"])
    assert out.names == ["b", "z", "a"]
    np.testing.assert_array_equal(out.points[[0, 2]], [[3.0, 4.0], [1.0, 2.0]])
    assert out.present.tolist() == [True, False, True]
    np.testing.assert_array_equal(lm.position("b"), [3.0, 4.0])
