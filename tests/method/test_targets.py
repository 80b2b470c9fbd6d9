"""Targets built in the graph invert back to the landmark they came from."""

import numpy as np
import pytest

from lmk_tf.method.layers import WeightedDisplacementAggregation, decode_displacement
from lmk_tf.method.targets import make_targets, unpack_displacement_target


@pytest.mark.parametrize("encoding", ["cells", "log"])
def test_targets_invert_to_landmarks(encoding):
    points = np.array([[10.3, 50.7], [62.9, 0.2], [31.5, 31.5]], "float32")
    present = np.array([True, True, True])
    disp, cls = make_targets(points, present, [8, 8], 8, encoding, cls_radius=0, reg_radius=None)
    enc, mask = unpack_displacement_target(disp, 2)
    assert np.asarray(cls).sum(axis=(0, 1)).tolist() == [1, 1, 1]
    # Aggregating the perfect targets must give back the landmarks exactly.
    d = decode_displacement(enc, 8, encoding)
    pos, _ = WeightedDisplacementAggregation(8)(np.reshape(d, (1, 8, 8, 6)), np.asarray(cls)[None])
    np.testing.assert_allclose(np.asarray(pos)[0], points, atol=1e-3)
    # Any single cell's vote, too.
    votes = np.asarray(d)[3, 4] + np.array([3 * 8 + 3.5, 4 * 8 + 3.5])
    np.testing.assert_allclose(votes, points, atol=1e-3)


def test_positive_cell_contains_landmark_and_radius_grows_it():
    points = np.array([[17.9, 40.1]], "float32")
    _, cls = make_targets(points, [True], [8, 8], 8, "cells", cls_radius=0)
    assert np.argwhere(np.asarray(cls)[..., 0]).tolist() == [[2, 5]]
    _, cls1 = make_targets(points, [True], [8, 8], 8, "cells", cls_radius=1)
    assert np.asarray(cls1).sum() == 9


def test_absent_landmark_has_no_positive_and_no_regression():
    points = np.array([[np.nan, np.nan], [5.0, 5.0]], "float32")
    disp, cls = make_targets(points, [False, True], [4, 4], 4, "cells", reg_radius=1)
    _, mask = unpack_displacement_target(disp, 2)
    assert np.asarray(cls)[..., 0].sum() == 0 and np.asarray(mask)[..., 0].sum() == 0
    assert np.asarray(mask)[..., 1].sum() == 9
    assert np.all(np.isfinite(np.asarray(disp)))
