"""Augmented patches and their targets agree on where the landmark is."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from lmk_tf.data.datasets import global_sample, local_sample
from lmk_tf.method.layers import cell_centres, decode_displacement
from lmk_tf.method.targets import unpack_displacement_target
from tests.conftest import tiny_configs


def blob_example(centre, shape=(64, 64)):
    yy, xx = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    img = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * 1.5**2))
    return {
        "image": tf.constant(img[..., None], tf.float32),
        "points": tf.constant([centre], tf.float32),
        "present": tf.constant([True]),
        "spacing": tf.constant([1.0, 1.0]),
    }


def centroid(patch):
    p = np.clip(patch[..., 0], 0, None)
    p = np.where(p > 0.3 * p.max(), p, 0)
    idx = np.indices(p.shape).reshape(2, -1)
    return (idx * p.reshape(-1)).sum(1) / p.sum()


def landmark_from_targets(targets, config):
    enc, mask = unpack_displacement_target(targets["displacement"], 2)
    cls = np.asarray(targets["classification"])
    cell = np.argwhere(cls[..., 0] == 1)
    assert len(cell) == 1, "exactly one positive cell"
    i, j = cell[0]
    d = np.asarray(decode_displacement(enc, config.net.total_stride, config.displacement_encoding))
    centres = np.asarray(cell_centres(cls.shape[:2], config.net.total_stride))
    return centres[i, j] + d[i, j, 0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_global_patch_targets_follow_the_augmentation(seed):
    g, _ = tiny_configs()
    config = dataclasses.replace(g, rotation_deg=20.0, zoom=(0.8, 1.2), intensity_aug=False, translate_px=4)
    # Image and patch the same size, so the landmark stays inside whatever the draw.
    example = blob_example([15.3, 17.7], shape=(32, 32))
    patch, targets = global_sample(example, tf.constant([seed, 7], tf.int64), config)
    assert patch.shape == (32, 32, 1)
    np.testing.assert_allclose(landmark_from_targets(targets, config), centroid(np.asarray(patch)), atol=0.35)


@pytest.mark.parametrize("seed", [0, 5])
def test_local_crop_targets_follow_the_offset_and_rotation(seed):
    _, loc = tiny_configs()
    config = dataclasses.replace(loc, rotation_deg=20.0, zoom=(0.8, 1.2), intensity_aug=False, local_offset_mm=3.0)
    crops, targets = local_sample(blob_example([30.3, 33.7]), tf.constant([seed, 3], tf.int64), config)
    assert crops.shape == (1, 16, 16, 1)
    one = {"displacement": targets["displacement"][0], "classification": targets["classification"][0][..., None]}
    got = landmark_from_targets({"displacement": tf.reshape(one["displacement"], [4, 4, 3]),
                                 "classification": one["classification"]}, config)
    np.testing.assert_allclose(got, centroid(np.asarray(crops)[0]), atol=0.35)


def test_same_seed_same_batch():
    g, _ = tiny_configs()
    ex = blob_example([30.0, 30.0])
    a, _ = global_sample(ex, tf.constant([4, 4], tf.int64), g)
    b, _ = global_sample(ex, tf.constant([4, 4], tf.int64), g)
    c, _ = global_sample(ex, tf.constant([4, 5], tf.int64), g)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_a_dark_canvas_surrounds_a_zoomed_out_image_and_the_patch_is_normalised_again():
    g, _ = tiny_configs()
    # Zoomed out 2x: the 32 px image fills the middle of the 32 px patch, the rest is canvas.
    config = dataclasses.replace(g, rotation_deg=0.0, zoom=(2.0, 2.0), intensity_aug=False, translate_px=0,
                                 canvas=1.0)
    example = blob_example([15.5, 15.5], shape=(32, 32))
    patches = [np.asarray(global_sample(example, tf.constant([s, 1], tf.int64), config)[0])[..., 0]
               for s in range(6)]
    for p in patches:
        # Normalised over the whole patch, canvas included, as the served graph does.
        assert abs(p.mean()) < 1e-4 and abs(p.std() - 1.0) < 1e-3
        corner, centre = p[:4, :4], p[14:18, 14:18]
        assert np.ptp(corner) < 1e-5, "the canvas is one value"
        assert centre.min() > corner.max(), "the blob stands out of it"
    # A random canvas value per patch: the corners differ between draws.
    assert np.ptp([p[0, 0] for p in patches]) > 0.05
    # Off (the default), the outside is the mean (0) and nothing is normalised again.
    off = dataclasses.replace(config, canvas=0.0)
    plain = np.asarray(global_sample(example, tf.constant([0, 1], tf.int64), off)[0])
    assert np.abs(plain[:4, :4]).max() < 1e-6


def test_a_canvas_on_some_patches_leaves_the_others_and_every_target_as_without_it():
    # The canvas draws from its own stream: where it is off, a patch is the one drawn without
    # the setting, and the geometry (so the targets) never changes.
    g, _ = tiny_configs()
    config = dataclasses.replace(g, zoom=(1.5, 2.0), intensity_aug=False)
    ex = blob_example([15.5, 15.5], shape=(32, 32))
    same = 0
    for s in range(12):
        seed = tf.constant([s, 2], tf.int64)
        a, ta = global_sample(ex, seed, config)
        b, tb = global_sample(ex, seed, dataclasses.replace(config, canvas=0.5))
        for k in ta:
            np.testing.assert_array_equal(np.asarray(ta[k]), np.asarray(tb[k]))
        if np.array_equal(np.asarray(a), np.asarray(b)):
            same += 1
        else:
            assert abs(float(np.mean(b))) < 1e-4, "a canvas patch is normalised again"
    assert 0 < same < 12, same
