"""The sample API: defaults, overrides, determinism, datasets, argument errors."""

import numpy as np
import pytest

from lmk_tf import synthetic
from lmk_tf.errors import ConfigError
from lmk_tf.image import Image


def test_defaults_2d():
    image, points, names = synthetic.make_sample(2, 0)
    assert isinstance(image, Image)
    assert image.shape == (256, 256)
    assert image.spacing == (1.0, 1.0)
    assert image.array.dtype == np.float32
    assert points.dtype == np.float64 and points.shape == (6, 2)
    assert names == synthetic.landmark_names(2) == list(synthetic.LANDMARKS_2D[:6])
    # Raw X-ray-like values, not normalised.
    assert image.array.min() >= 0.0 and image.array.max() <= 1000.0
    assert image.array.max() > 300.0
    assert image.meta["synthetic"]["seed"] == 0


def test_defaults_3d():
    image, points, names = synthetic.make_sample(3, 0)
    assert image.shape == (64, 64, 64)
    assert image.spacing == (1.5, 1.5, 1.5)
    assert image.array.dtype == np.float32
    assert points.shape == (5, 3)
    assert names == ["cone_apex", "rod_end", "box_corner", "blob_centre", "foramen_centre"]
    assert image.array.min() >= 0.0 and image.array.max() <= 1000.0


def test_shape_spacing_and_count_overrides():
    image, points, names = synthetic.make_sample(
        3, 4, shape=(40, 48, 32), spacing=(2.0, 1.0, 1.5), num_landmarks=4
    )
    assert image.shape == (40, 48, 32)
    assert image.spacing == (2.0, 1.0, 1.5)
    assert points.shape == (4, 3) and len(names) == 4
    image, points, names = synthetic.make_sample(2, 4, num_landmarks=8)
    assert names == list(synthetic.LANDMARKS_2D)


def test_same_seed_is_byte_identical_and_seeds_differ():
    for ndim in (2, 3):
        a, pa, na = synthetic.make_sample(ndim, 11)
        b, pb, nb = synthetic.make_sample(ndim, 11)
        c, pc, _ = synthetic.make_sample(ndim, 12)
        assert a.array.tobytes() == b.array.tobytes()
        assert pa.tobytes() == pb.tobytes() and na == nb
        assert a.array.tobytes() != c.array.tobytes()
        assert np.abs(pa - pc).max() > 1.0


def test_make_dataset_is_reproducible_sample_by_sample():
    data = synthetic.make_dataset(2, 3, seed=5, shape=(64, 64), spacing=(4.0, 4.0))
    assert len(data) == 3
    for i, (image, points, _names) in enumerate(data):
        again, again_points, _ = synthetic.make_sample(
            2, synthetic.sample_seed(5, i), shape=(64, 64), spacing=(4.0, 4.0)
        )
        assert image.array.tobytes() == again.array.tobytes()
        np.testing.assert_array_equal(points, again_points)
    assert synthetic.sample_seed(5, 0) != synthetic.sample_seed(5, 1)
    assert synthetic.sample_seed(5, 0) != synthetic.sample_seed(6, 0)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(ndim=4, seed=0), "got 4"),
        (dict(ndim=2, seed=-1), "got -1"),
        (dict(ndim=2, seed=0, num_landmarks=9), "got 9"),
        (dict(ndim=3, seed=0, num_landmarks=0), "got 0"),
        (dict(ndim=2, seed=0, shape=(8, 256)), "(8, 256)"),
        (dict(ndim=2, seed=0, spacing=(1.0, -1.0)), "-1.0"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, fragment):
    with pytest.raises(ConfigError) as info:
        synthetic.make_sample(**kwargs)
    assert fragment in str(info.value)
