"""Where training and evaluation images come from, and how they are split.

A source is a list of `Sample`s: an id, a loader for the image (images are read
only when needed: 150 cephalograms are 2.7 GB as float32) and the landmarks in
the image's continuous indices, with each annotator's points kept apart so the
inter-observer difference can be reported beside the model's error.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np

from lmk_tf.errors import ConfigError
from lmk_tf.image import Image


@dataclasses.dataclass
class Sample:
    """One image with its landmarks.

    Attributes:
      image_id: identifier (file name or synthetic id).
      load: returns the Image.
      points: [L, ndim] ground truth in continuous indices (NaN: missing).
      annotators: each annotator's [L, ndim] points (empty for synthetic).
    """

    image_id: str
    load: Callable[[], Image]
    points: np.ndarray
    annotators: list = dataclasses.field(default_factory=list)


def synthetic_source(ndim: int, n: int, seed: int, **kwargs) -> tuple[list[Sample], list[str]]:
    """n generated images; landmarks outside the field of view are missing.

    `kwargs` go to `make_sample` (shape, spacing, num_landmarks, config).
    """
    from lmk_tf.data.prepare import mark_outside_missing
    from lmk_tf.synthetic import landmark_names, make_sample, sample_seed

    samples = []
    for i in range(n):
        image, points, _ = make_sample(ndim, sample_seed(seed, i), **kwargs)
        samples.append(Sample(f"synthetic-{seed}-{i:04d}", (lambda im=image: im),
                              mark_outside_missing(image, points)))
    return samples, landmark_names(ndim)


def table_source(image_dir: str, landmark_files: list[str], *, spacing=None,
                 combine: str = "mean") -> tuple[list[Sample], list[str]]:
    """Images in `image_dir` named by the rows of one or more ISBI-style CSV tables.

    Args:
      image_dir: directory holding the image files named in the tables.
      landmark_files: one table per annotator (same image ids and names).
      spacing: mm per pixel for files without it (e.g. 0.1 for ISBI JPEGs).
      combine: 'mean' of the annotators, or 'first' (e.g. senior only).
    """
    from lmk_tf.io import read_image
    from lmk_tf.io.landmarks import read_landmark_table

    if not landmark_files:
        raise ConfigError("no landmark files given")
    if combine not in ("mean", "first"):
        raise ConfigError(f"combine must be 'mean' or 'first', got {combine!r}")
    tables = [read_landmark_table(p) for p in landmark_files]
    names = next(iter(tables[0].values())).names
    ids = sorted(tables[0])
    for path, table in zip(landmark_files[1:], tables[1:]):
        if sorted(table) != ids:
            raise ConfigError(f"{path}: lists other images than {landmark_files[0]}")
    samples = []
    for image_id in ids:
        path = os.path.join(image_dir, image_id)
        if not os.path.exists(path):
            raise ConfigError(f"{path}: image named in {landmark_files[0]} does not exist")
        per = [t[image_id].reindex(names).points for t in tables]
        points = np.mean(per, axis=0) if combine == "mean" else per[0]
        samples.append(Sample(image_id, (lambda p=path: read_image(p, spacing=spacing)), points, per))
    return samples, list(names)


def split(samples: list[Sample], *, fold: int, num_folds: int, seed: int = 0):
    """(train, held_out) for fold `fold` of a seeded K-fold split; fold -1: all, none."""
    if fold == -1:
        return list(samples), []
    if num_folds < 2 or not 0 <= fold < num_folds:
        raise ConfigError(f"fold must be -1 or in [0, {num_folds}), got fold={fold}, num_folds={num_folds}")
    order = np.random.default_rng(seed).permutation(len(samples))
    held = set(order[fold::num_folds].tolist())
    train = [s for i, s in enumerate(samples) if i not in held]
    val = [s for i, s in enumerate(samples) if i in held]
    return train, val
