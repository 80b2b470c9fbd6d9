"""Placement: the same scene in mm at any resolution, and the landmark put outside the field of view."""

import numpy as np

from lmk_tf import synthetic
from tests.synthetic.helpers import CLEAN


def test_same_physical_layout_at_any_resolution():
    # 256 mm at 1 mm and at (0.5, 2) mm: the same seed gives the same scene in
    # mm, so index i of one grid maps to (i + 0.5) * ratio - 0.5 of the other.
    fine, p_fine, _ = synthetic.make_sample(2, 7, config=CLEAN)
    aniso, p_aniso, _ = synthetic.make_sample(
        2, 7, shape=(512, 128), spacing=(0.5, 2.0), config=CLEAN
    )
    np.testing.assert_allclose(p_aniso, (p_fine + 0.5) * [2.0, 0.5] - 0.5, atol=1e-9)
    # The pictures agree too: fine pixels averaged to the coarse grid.
    coarse_from_fine = np.repeat(fine.array, 2, axis=0).reshape(512, 128, 2).mean(axis=2)
    correlation = np.corrcoef(coarse_from_fine.ravel(), aniso.array.ravel())[0, 1]
    assert correlation > 0.97


def test_outside_fov_frequency_and_truth():
    config = synthetic.SyntheticConfig()
    outside_count = 0
    for seed in range(200):
        image, points, names = synthetic.make_sample(2, seed, config=config)
        inside = image.contains_index(points)
        named = image.meta["synthetic"]["outside_landmark"]
        if named is None:
            assert inside.all(), seed
        else:
            outside_count += 1
            # Exactly the named landmark is outside, and clearly so.
            assert list(np.nonzero(~inside)[0]) == [names.index(named)], seed
            p = points[names.index(named)]
            beyond = np.maximum(-0.5 - p, p - (np.array(image.shape) - 0.5)).max()
            assert beyond >= 0.01 * 256 - 1e-6
    # p = 0.15 over 200 draws: sd 0.025; allow about 3 sd.
    assert 0.08 <= outside_count / 200 <= 0.23, outside_count


def test_no_landmark_outside_when_disabled_3d():
    for seed in range(30):
        image, points, _ = synthetic.make_sample(3, seed, config=CLEAN)
        assert image.contains_index(points).all(), seed
        assert image.meta["synthetic"]["outside_landmark"] is None
