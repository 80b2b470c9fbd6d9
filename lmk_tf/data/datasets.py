"""tf.data input pipelines for the global and local stages.

Everything after reading the shards runs in the graph: a random affine patch
(rotation, zoom, translation, with landmarks moved by the same transform),
appearance augmentation (`augment`), and the targets. Randomness is stateless and seeded
from (seed, element index), so a pipeline replays identically.
"""

from __future__ import annotations

import math

import tensorflow as tf

from lmk_tf.data import augment
from lmk_tf.data.records import parse_example
from lmk_tf.method.config import StageConfig
from lmk_tf.method.sampling import centred_grid, sample_linear
from lmk_tf.method.targets import make_targets


def random_rotation(seed, ndim, max_deg):
    """A rotation matrix with angles uniform in +-max_deg about each plane."""
    max_rad = max_deg * math.pi / 180.0
    if ndim == 2:
        a = tf.random.stateless_uniform([], seed, -max_rad, max_rad)
        c, s = tf.cos(a), tf.sin(a)
        return tf.stack([tf.stack([c, -s]), tf.stack([s, c])])
    angles = tf.random.stateless_uniform([3], seed, -max_rad, max_rad)
    rot = tf.eye(3)
    for plane, (i, j) in enumerate(((0, 1), (0, 2), (1, 2))):
        c, s = tf.cos(angles[plane]), tf.sin(angles[plane])
        m = tf.tensor_scatter_nd_update(
            tf.eye(3), [[i, i], [i, j], [j, i], [j, j]], tf.stack([c, -s, s, c])
        )
        rot = m @ rot
    return rot


def random_transform(seed, config: StageConfig):
    """Output-offset -> source-offset matrix A = rotation * zoom."""
    s_rot, s_zoom = augment.seeds(seed, 2)
    rot = random_rotation(s_rot, config.ndim, config.rotation_deg)
    zoom = tf.random.stateless_uniform([], s_zoom, config.zoom[0], config.zoom[1])
    return rot * zoom


def augment_appearance(x, seed, config: StageConfig):
    """Exposure curve, blur, then contrast/brightness/noise, as the config asks."""
    s_gamma, s_blur, s_int = augment.seeds(seed, 3)
    if config.gamma != (1.0, 1.0):
        x = augment.gamma(x, s_gamma, config.gamma)
    if config.blur_sigma_px > 0:
        x = augment.blur(x, s_blur, config.blur_sigma_px, config.ndim)
    if config.intensity_aug:
        x = augment.intensity(x, s_int)
    return x


def global_sample(example, seed, config: StageConfig):
    """A random patch of a prepared image with its global-stage targets."""
    ndim, size = config.ndim, config.patch_size
    s_aff, s_shift, s_int, s_cut = augment.seeds(seed, 4)
    image, points, present = example["image"], example["points"], example["present"]
    src_size = tf.cast(tf.shape(image)[:-1], tf.float32)
    # The patch centre moves so that a patch smaller than the image can reach
    # every part of it, plus `translate_px` of free play either way.
    reach = tf.abs(src_size - size) / 2.0 + config.translate_px
    shift = tf.random.stateless_uniform([ndim], s_shift, -1.0, 1.0) * reach
    src_centre = (src_size - 1.0) / 2.0 + shift
    a = random_transform(s_aff, config)

    coords = tf.einsum("ij,...j->...i", a, centred_grid(size, ndim, 1.0)) + src_centre
    if config.canvas > 0:
        # Its own stream, so that recipes without a canvas sample exactly as before.
        fill, on = augment.canvas_value(tf.random.experimental.stateless_fold_in(seed, 5), config.canvas)
        patch = augment.renormalise(sample_linear(image[None], coords[None], fill_value=fill)[0], on)
    else:
        patch = sample_linear(image[None], coords[None])[0]
    patch = augment_appearance(patch, s_int, config)
    rows = None
    if config.fov_cut > 0:
        # A landmark in the cut rows is out of the field of view: nothing marks it there.
        top, bottom = augment.field_cut(s_cut, size, config.fov_cut)
        patch = augment.apply_cut(patch, top, bottom, size)
        rows = (top, size - bottom)
    safe = tf.where(present[:, None], points, tf.zeros_like(points))
    disp_t, cls_t = _targets_in_sampled_grid(safe, present, a, src_centre, config, rows=rows)
    return patch, {"displacement": disp_t, "classification": cls_t}


def _targets_in_sampled_grid(points, present, a, src_centre, config: StageConfig, rows=None):
    """Targets for landmarks seen through the grid that maps offset u to src_centre + a u.

    `src_centre` is [ndim] (one patch) or [L, ndim] (one crop per landmark);
    `rows` = (first, end) limits the visible rows of axis 0 (a cut field of view).
    """
    size = config.patch_size
    moved = tf.einsum("ij,lj->li", tf.linalg.inv(a), points - src_centre) + (size - 1) / 2.0
    inside = tf.reduce_all((moved >= -0.5) & (moved <= size - 0.5), axis=-1)
    if rows is not None:
        inside &= (moved[:, 0] >= rows[0] - 0.5) & (moved[:, 0] <= rows[1] - 0.5)
    return make_targets(
        moved, present & inside, [config.grid_size] * config.ndim, config.net.total_stride,
        config.displacement_encoding, config.cls_radius, config.reg_radius,
    )


def local_sample(example, seed, config: StageConfig):
    """One sub-image per landmark, centred near it, with local-stage targets."""
    ndim, size = config.ndim, config.patch_size
    s_aff, s_off, s_int = augment.seeds(seed, 3)
    image, points, present = example["image"], example["points"], example["present"]
    num_landmarks = points.shape[0]
    src_size = tf.cast(tf.shape(image)[:-1], tf.float32)
    offset_px = config.local_offset_mm / example["spacing"]
    offsets = tf.random.stateless_uniform([num_landmarks, ndim], s_off, -1.0, 1.0) * offset_px
    # An unannotated landmark still gets a crop (at the image centre) with
    # all-zero targets: it teaches the heads what "not here" looks like.
    safe = tf.where(present[:, None], points, tf.broadcast_to((src_size - 1.0) / 2.0, tf.shape(points)))
    centres = safe + offsets
    a = random_transform(s_aff, config)

    rotated = tf.einsum("ij,...j->...i", a, centred_grid(size, ndim, 1.0))
    expand = [num_landmarks] + [1] * ndim + [ndim]
    coords = rotated[None] + tf.reshape(centres, expand)  # [L, *n, ndim]
    crops = sample_linear(image[None], coords[None])[0]  # [L, *n, 1]
    crops = augment_appearance(crops, s_int, config)
    disp_t, cls_t = _targets_in_sampled_grid(safe, present, a, centres, config)
    grid_shape = [config.grid_size] * ndim
    # make_targets lays landmarks last; crop l only concerns landmark l.
    disp_t = tf.reshape(disp_t, grid_shape + [num_landmarks, ndim + 1])
    perm = [ndim] + list(range(ndim)) + [ndim + 1]
    disp_t = tf.transpose(disp_t, perm)
    cls_t = tf.transpose(cls_t, [ndim] + list(range(ndim)))
    return crops, {"displacement": disp_t, "classification": cls_t}


def training_dataset(files, config: StageConfig, num_landmarks: int, *, repeat=True, cache=True):
    """Batched (input, targets) pairs for `model.fit`, seeded by config.seed."""
    if not files:
        raise ValueError("no TFRecord files given")
    sample = global_sample if config.stage == "global" else local_sample
    ds = tf.data.TFRecordDataset(sorted(files))
    ds = ds.map(lambda s: parse_example(s, config.ndim, num_landmarks),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
    if repeat:
        ds = ds.shuffle(256, seed=config.seed, reshuffle_each_iteration=True).repeat()
    ds = ds.enumerate()

    def with_seed(i, ex):
        seed = tf.stack([tf.constant(config.seed, tf.int64), i])
        return sample(ex, seed, config)

    ds = ds.map(with_seed, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(config.batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)
