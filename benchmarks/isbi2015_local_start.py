r"""Where the ISBI 2015 error comes from: the local stage's own, or the global stage's start.

  .venv/bin/python benchmarks/isbi2015_local_start.py --data=../shared/data/isbi2015 \
      --models=saved_models/isbi2015_kfold --folds=0,1,2,3,4

Each fold's exported model (`<models>/fold<k>/<version>/`, rebuilt as its Keras
graph) answers the images its fold held out, and its local stage is run again
(one pass, every local net, `GlobalToLocal.refine_from`) from other starts:
the truth, and the truth moved by each --offsets_mm length in a random
direction per landmark (seeded). It prints, per fold and pooled, the MRE of
the model as served, of its global stage, and of the local stage from each
start; then the same per landmark, pooled. A model whose local stage makes
`truth_mm=0.90` but which serves 1.14 mm loses the difference to its global
stage's start: a better global stage is worth that much, a better local net
the rest. The last line is `model_mm=... global_mm=... truth_mm=...
truth+<d>mm=... images=...`.
"""

import os
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lmk_tf import cli

flags.DEFINE_string("data", "../shared/data/isbi2015", "The isbi2015 directory (images/, senior.csv, junior.csv).")
flags.DEFINE_string("models", "saved_models/isbi2015_kfold", "Directory with fold<k>/<version>/ SavedModels.")
flags.DEFINE_list("folds", ["0", "1", "2", "3", "4"], "Folds to run (each must have its model).")
flags.DEFINE_list("offsets_mm", ["1", "2", "4"], "Start the local stage this far from the truth too (mm).")
flags.DEFINE_integer("num_folds", 5, "K of the recipe's K-fold split.")
flags.DEFINE_integer("split_seed", 0, "Seed of the recipe's fold split.")
flags.DEFINE_integer("seed", 0, "Seed of the offsets' directions.")
flags.DEFINE_integer("max_images", 0, "Use at most this many held-out images per fold (0: all).", lower_bound=0)
flags.DEFINE_float("spacing", 0.1, "mm per pixel of the images.")
FLAGS = flags.FLAGS


def parse_offsets(items) -> list[float]:
    try:
        offsets = [float(v) for v in items]
    except ValueError:
        raise SystemExit(f"isbi2015_local_start: --offsets_mm {','.join(items)!r}: give lengths in mm, "
                         "e.g. 1,2,4") from None
    if any(not v > 0 for v in offsets):
        raise SystemExit(f"isbi2015_local_start: --offsets_mm must be > 0 mm, got {offsets}")
    return offsets


def random_offsets(rng, count, ndim, length_mm, spacing):
    """`count` offsets (indices) of `length_mm` each, in uniformly random directions."""
    directions = rng.normal(size=(count, ndim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return directions * length_mm / np.asarray(spacing)


def radial_mm(index, truth, spacing):
    return np.linalg.norm((np.asarray(index) - truth) * spacing, axis=1)


def fold_errors(model, held_out, offsets, rng):
    """{start: [images, L] radial errors in mm} for the model as served, its global stage and its
    local stage from the truth and from the truth + each offset."""
    import tensorflow as tf

    serve = tf.function(lambda image, spacing: model({"image": image, "spacing": spacing}))
    refine = tf.function(model.refine_from)
    starts = ["truth_mm"] + [f"truth+{d:g}mm" for d in offsets]
    errors = {k: [] for k in ["model_mm", "global_mm", *starts]}
    for sample in held_out:
        image = sample.load()
        spacing = np.asarray(image.spacing, np.float32)
        pixels = tf.constant(np.asarray(image.array, np.float32)[..., None])
        truth = np.asarray(sample.points, np.float32)
        out = serve(pixels, spacing)
        errors["model_mm"].append(radial_mm(out["landmarks_index"], truth, spacing))
        errors["global_mm"].append(radial_mm(out["global_index"], truth, spacing))
        for name, d in zip(starts, [0.0, *offsets]):
            start = truth + (random_offsets(rng, len(truth), truth.shape[1], d, spacing) if d else 0.0)
            errors[name].append(radial_mm(refine(pixels, spacing, tf.constant(start, tf.float32)), truth, spacing))
    return {k: np.stack(v) for k, v in errors.items()}


def main(argv):
    del argv
    offsets = parse_offsets(FLAGS.offsets_mm)
    cli.import_tensorflow_quietly()
    from lmk_tf.data import sources
    from lmk_tf.export.reload import rebuild

    d = FLAGS.data
    samples, names = sources.table_source(
        os.path.join(d, "images"), [os.path.join(d, "senior.csv"), os.path.join(d, "junior.csv")],
        spacing=FLAGS.spacing, combine="mean")
    rng = np.random.default_rng(FLAGS.seed)
    pooled, t0 = {}, time.time()
    for fold in (int(f) for f in FLAGS.folds):
        path = os.path.join(FLAGS.models, f"fold{fold}")
        if not os.path.isdir(path):
            raise SystemExit(f"isbi2015_local_start: no model for fold {fold} in {path}")
        _, held_out = sources.split(samples, fold=fold, num_folds=FLAGS.num_folds, seed=FLAGS.split_seed)
        held_out = held_out[:FLAGS.max_images] if FLAGS.max_images else held_out
        # The shifted sub-images only feed an uncertainty signal: not needed here.
        errors = fold_errors(rebuild(path, shift_crops=0), held_out, offsets, rng)
        print(f"fold {fold} ({len(held_out)} images, {time.time() - t0:.0f}s): "
              + "  ".join(f"{k}={v.mean():.3f}" for k, v in errors.items()), flush=True)
        for k, v in errors.items():
            pooled.setdefault(k, []).append(v)
    pooled = {k: np.concatenate(v) for k, v in pooled.items()}
    print("\nper landmark, pooled (mm):")
    print(f"{'landmark':24s}" + "".join(f"{k:>14s}" for k in pooled))
    for i in np.argsort(-pooled["model_mm"].mean(axis=0)):
        print(f"{names[i]:24s}" + "".join(f"{v[:, i].mean():14.3f}" for v in pooled.values()))
    images = len(next(iter(pooled.values())))
    print(" ".join(f"{k}={v.mean():.3f}" for k, v in pooled.items()) + f" images={images}")


if __name__ == "__main__":
    app.run(main)
