"""Where training and evaluation images come from, and how they are split.

A source is a list of `Sample`s: an id, a loader for the image (images are read
only when needed: 150 cephalograms are 2.7 GB as float32) and the landmarks in
the image's continuous indices, with each annotator's points kept apart so the
inter-observer difference can be reported beside the model's error.

Three sources: the package's synthetic images, ISBI-style landmark tables
(`table_source`), and volumes with one landmark file each as 3D Slicer and
other tools save them (`volume_source`).
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


def _list_dir(directory: str, what: str) -> list[str]:
    if not os.path.isdir(directory):
        raise ConfigError(f"{directory}: the {what} directory does not exist")
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if not n.startswith("."))


def _by_stem(paths, stem, what: str, directory: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in paths:
        key = stem(path)
        if key in found:
            raise ConfigError(f"{found[key]} and {path} are both {what} '{key}'; keep one per name in {directory}")
        found[key] = path
    return found


def pair_by_stem(image_dir: str, landmark_dir: str) -> list[tuple[str, str]]:
    """(image, landmark file) pairs: case1.nii.gz (or the DICOM series folder case1/) with case1.mrk.json.

    Every image needs a landmark file and every landmark file an image; the
    error lists those without one (give a manifest to use a subset).
    """
    from lmk_tf.io.naming import IMAGE_SUFFIXES, LANDMARK_SUFFIXES, image_stem, landmark_stem

    images = [p for p in _list_dir(image_dir, "image") if os.path.isdir(p) or p.lower().endswith(IMAGE_SUFFIXES)]
    marks = [p for p in _list_dir(landmark_dir, "landmark") if p.lower().endswith(LANDMARK_SUFFIXES)]
    images = _by_stem(images, image_stem, "image", image_dir)
    marks = _by_stem(marks, landmark_stem, "landmarks of", landmark_dir)
    for have, lack, where in ((images, marks, f"no landmark file in {landmark_dir}"),
                              (marks, images, f"no image in {image_dir}")):
        alone = sorted(set(have) - set(lack))
        if alone:
            more = f" and {len(alone) - 5} more" if len(alone) > 5 else ""
            raise ConfigError(f"{', '.join(have[k] for k in alone[:5])}{more}: {where} (pairs are found by "
                              "name: case1.nii.gz with case1.mrk.json); or give --manifest")
    if not images:
        raise ConfigError(f"{image_dir}: no image files (NIfTI, NRRD, MetaImage, DICOM series folders, ...)")
    return [(images[k], marks[k]) for k in sorted(images)]


def read_manifest(path: str) -> list[tuple[str, str]]:
    """(image, landmark file) pairs from a CSV with columns image,landmarks (relative to the CSV)."""
    import csv

    base = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such manifest") from None
    if not rows or not {"image", "landmarks"} <= set(rows[0]):
        raise ConfigError(f"{path}: a manifest needs a header with the columns image,landmarks and one row per image")
    pairs = []
    for line, row in enumerate(rows, start=2):
        image, marks = (row.get("image") or "").strip(), (row.get("landmarks") or "").strip()
        if not image or not marks:
            raise ConfigError(f"{path}: line {line}: needs both an image and a landmarks path")
        pairs.append((os.path.join(base, image), os.path.join(base, marks)))
    return pairs


def volume_source(pairs: list[tuple[str, str]], *, spacing=None,
                  allow_outside: bool = False) -> tuple[list[Sample], list[str]]:
    """Images with one landmark file each (Slicer .mrk.json/.fcsv, or the package's JSON).

    World coordinates (LPS or RAS, as each file says) become continuous
    indices through each image's own origin, spacing and direction. Every
    image is read once here, to check its points, and again when used.

    Args:
      pairs: (image path, landmark path), e.g. from `pair_by_stem` or `read_manifest`.
      spacing: mm per voxel for images that state none (overrides the files').
      allow_outside: a point outside its image is marked absent instead of refused.

    Returns:
      (samples, names): the landmark names are the first file's; every other
      file must hold the same names (in any order).
    """
    from lmk_tf.io import read_image
    from lmk_tf.io.landmarks import read_landmarks
    from lmk_tf.io.naming import image_stem

    if not pairs:
        raise ConfigError("no images given")
    samples, names, first = [], None, None
    _by_stem([p for p, _ in pairs], image_stem, "image", "the list")  # sample ids are the stems
    for image_path, marks_path in pairs:
        image = read_image(image_path, spacing=spacing)
        landmarks = read_landmarks(marks_path, image=image)
        if names is None:
            names, first = list(landmarks.names), marks_path
        elif set(landmarks.names) != set(names):
            missing, extra = sorted(set(names) - set(landmarks.names)), sorted(set(landmarks.names) - set(names))
            raise ConfigError(f"{marks_path}: its landmarks differ from those of {first} (the first file): "
                              f"missing {missing}, extra {extra}")
        points = landmarks.reindex(names).points
        outside = np.all(np.isfinite(points), axis=1) & ~image.contains_index(points)
        if np.any(outside):
            if not allow_outside:
                i = int(np.argmax(outside))
                raise ConfigError(
                    f"{marks_path}: landmark {names[i]!r} lies outside {image_path} (index "
                    f"{np.round(points[i], 2).tolist()}, shape {list(image.shape)}); check that the file "
                    "belongs to this image, or give --allow_outside to mark such landmarks absent")
            points[outside] = np.nan
        samples.append(Sample(image_stem(image_path), (lambda p=image_path: read_image(p, spacing=spacing)),
                              points))
        del image
    return samples, names


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
