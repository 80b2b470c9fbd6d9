"""Images + landmarks -> TFRecord shards for both stages (what `lmk-prepare` does).

Each image is normalised and resampled with the same functions the served
graph runs (`lmk_tf.method.preprocess`), once to the global spacing and once
to the local spacing; landmarks are mapped into each resampled grid. Both
spacings are isotropic, whatever the input's (a 0.7 x 0.7 x 2.5 mm CT becomes
2 mm cubes for the global stage).

Examples are written as soon as they are made, so preparing a hundred CT
volumes holds one of them in memory, not all.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from lmk_tf.data.records import serialize_example, write_shards
from lmk_tf.errors import ConfigError
from lmk_tf.image import Image
from lmk_tf.method.preprocess import normalise_intensity, resample
from lmk_tf.method.scale import reference_distances
from lmk_tf.method.shape import shape_weights


def resample_for_stage(image: Image, points_index: np.ndarray, spacing: float):
    """(resampled array, effective spacing, points in the resampled grid's indices)."""
    x = normalise_intensity(tf.convert_to_tensor(image.array[..., None], tf.float32))
    out, scale, offset = resample(x, tf.constant(image.spacing, tf.float32), spacing)
    scale, offset = scale.numpy().astype(np.float64), offset.numpy().astype(np.float64)
    points = (np.asarray(points_index, np.float64) - offset) / scale
    return out.numpy()[..., 0], np.asarray(image.spacing) * scale, points


def prepare_records(
    samples: Iterable[tuple[str, Image, np.ndarray]],
    out_dir: str,
    *,
    split: str,
    landmark_names: list[str],
    global_spacing: float,
    local_spacing: float,
    num_shards: int = 4,
    log=sys.stdout,
) -> int:
    """Writes `<split>-global-*.tfrecord` and `<split>-local-*.tfrecord`.

    Args:
      samples: (image_id, image, points_index [L, ndim] with NaN rows missing).
      out_dir: output directory (created).
      split: 'train' or 'val' (or any name): the shard prefix.
      landmark_names: the L names; also written to dataset.json.
      global_spacing, local_spacing: mm per pixel of the two stages.

    Returns:
      the number of images written.
    """
    if global_spacing <= 0 or local_spacing <= 0:
        raise ConfigError(
            f"stage spacings must be > 0 mm, got global={global_spacing}, local={local_spacing}"
        )
    writers = {stage: _Shards(out_dir, f"{split}-{stage}", num_shards) for stage in ("global", "local")}
    points_mm = []
    try:
        ndim, count = _write_examples(samples, writers, landmark_names, global_spacing, local_spacing, log,
                                      points_mm)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    for w in writers.values():
        w.close()
    write_dataset_info(out_dir, ndim=ndim, landmark_names=landmark_names,
                       global_spacing=global_spacing, local_spacing=local_spacing,
                       counts={split: count}, reference=_reference(points_mm) if split == "train" else None,
                       shape=_shape(points_mm) if split == "train" else None)
    return count


def _reference(points_mm):
    """The training heads' landmark pair distances (normalise_scale), if every pair is ever seen."""
    try:
        return reference_distances(np.stack(points_mm))
    except ValueError:  # fewer than 3 landmarks, or a pair never seen together
        return None


def _shape(points_mm):
    """The training heads' shape weights (the shape_mm signal), if there are enough landmarks."""
    try:
        return shape_weights(np.stack(points_mm))
    except ValueError:  # fewer than 3 landmarks, or one never seen with all the others
        return None


def _write_examples(samples, writers, landmark_names, global_spacing, local_spacing, log, points_mm):
    """(ndim, number of images) after writing both stages' examples of every sample."""
    ndim, count = None, 0
    t0 = time.time()
    for i, (image_id, image, points) in enumerate(samples):
        points = np.asarray(points, np.float64)
        if points.shape != (len(landmark_names), image.ndim):
            raise ConfigError(
                f"{image_id}: expected {len(landmark_names)} landmarks x {image.ndim} coordinates, "
                f"got shape {points.shape}"
            )
        if ndim is None:
            ndim = image.ndim
        elif image.ndim != ndim:
            raise ConfigError(f"{image_id}: is {image.ndim}D but earlier images are {ndim}D")
        points_mm.append(points * np.asarray(image.spacing, np.float64))
        for stage, spacing in (("global", global_spacing), ("local", local_spacing)):
            arr, eff, pts = resample_for_stage(image, points, spacing)
            writers[stage].write(serialize_example(arr, eff, pts, image_id))
        count += 1
        if log and (i + 1) % 25 == 0:
            print(f"  prepared {i + 1} images ({time.time() - t0:.0f}s)", file=log, flush=True)
    if ndim is None:
        raise ConfigError("no images to prepare")
    return ndim, count


class _Shards:
    """`write_shards` one example at a time: round-robin, the same files and order.

    The first `num_shards` examples wait until it is known that there are
    that many (fewer images get fewer shards, as with `write_shards`).
    """

    def __init__(self, directory: str, prefix: str, num_shards: int):
        self.directory, self.prefix, self.num_shards = directory, prefix, num_shards
        self.pending, self.writers, self.count = [], None, 0

    def write(self, example: bytes):
        if self.writers is None:
            self.pending.append(example)
            if len(self.pending) < self.num_shards:
                return
            os.makedirs(self.directory, exist_ok=True)
            n = self.num_shards
            self.writers = [tf.io.TFRecordWriter(
                os.path.join(self.directory, f"{self.prefix}-{i:05d}-of-{n:05d}.tfrecord")) for i in range(n)]
            pending, self.pending = self.pending, []
            for ex in pending:
                self.write(ex)
            return
        self.writers[self.count % self.num_shards].write(example)
        self.count += 1

    def abort(self):
        for w in self.writers or []:
            w.close()
        self.pending = []

    def close(self):
        if self.writers is None:
            write_shards(self.pending, self.directory, self.prefix, self.num_shards)
            self.pending = []
            return
        for w in self.writers:
            w.close()


def write_dataset_info(out_dir, *, ndim, landmark_names, global_spacing, local_spacing, counts, reference=None,
                       shape=None):
    """dataset.json: what training needs to know about the shards (merged per split).

    `reference`: the training images' mean landmark pair distances in mm
    (`lmk_tf.method.scale.reference_distances`), for a scale-normalised local stage;
    `shape`: their shape weights (`lmk_tf.method.shape.shape_weights`), for the shape_mm signal.
    """
    path = os.path.join(out_dir, "dataset.json")
    info = {}
    if os.path.exists(path):
        with open(path) as f:
            info = json.load(f)
        if info.get("landmark_names") not in (None, list(landmark_names)):
            raise ConfigError(f"{path}: holds other landmark names; use a fresh output directory")
    merged_counts = dict(info.get("counts", {}))
    merged_counts.update(counts)
    info.update({
        "ndim": int(ndim),
        "landmark_names": list(landmark_names),
        "global_spacing": float(global_spacing),
        "local_spacing": float(local_spacing),
        "counts": merged_counts,
    })
    if reference is not None:
        info["reference_distances_mm"] = list(reference)
    if shape is not None:
        info["shape_weights"] = shape
    with open(path, "w") as f:
        json.dump(info, f, indent=2)


def synthetic_samples(ndim: int, n: int, seed: int, **kwargs):
    """(id, image, points) triples from the package's synthetic generator."""
    from lmk_tf.data.sources import synthetic_source

    samples, _ = synthetic_source(ndim, n, seed, **kwargs)
    for s in samples:
        yield s.image_id, s.load(), s.points


def mark_outside_missing(image: Image, points: np.ndarray) -> np.ndarray:
    """Landmarks outside the field of view become NaN (annotated as absent)."""
    points = np.array(points, np.float64)
    points[~image.contains_index(points)] = np.nan
    return points
