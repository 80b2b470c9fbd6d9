"""The scenes: blob landmarks are blob centres, and the layout varies between samples."""

import numpy as np
import pytest

from lmk_tf import synthetic
from tests.synthetic.helpers import CLEAN


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_blob_landmark_is_the_blob_centroid_3d(seed):
    image, points, names = synthetic.make_sample(3, seed, config=CLEAN)
    p = points[names.index("blob_centre")]
    c = np.round(p).astype(int)
    window = image.array[c[0] - 5 : c[0] + 6, c[1] - 5 : c[1] + 6, c[2] - 5 : c[2] + 6]
    grid = np.stack(np.meshgrid(*[np.arange(-5, 6)] * 3, indexing="ij"), axis=-1)
    # A ball of 4.5 voxels holds the blob (radius <= 2.5 voxels) and its edge,
    # but not the body wall further away.
    ball = np.linalg.norm(grid, axis=-1) <= 4.5
    weights = np.where(ball, np.clip(window - np.median(window[ball]), 0, None), 0.0)
    centroid = c + (weights[..., None] * grid).sum(axis=(0, 1, 2)) / weights.sum()
    assert np.linalg.norm(centroid - p) < 0.05, (centroid, p)


def test_every_layout_varies_between_samples():
    # Pose and shape vary: pairwise landmark distances are not constant.
    distances = []
    for seed in range(10):
        _, points, _ = synthetic.make_sample(2, seed)
        distances.append(np.linalg.norm(points[0] - points[4]))
    assert np.std(distances) > 2.0
