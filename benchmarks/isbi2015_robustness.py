"""Robustness of the ISBI 2015 k-fold models on perturbed held-out images.

  .venv/bin/python benchmarks/isbi2015_robustness.py --data=../shared/data/isbi2015 \
      --models=saved_models/isbi2015_kfold --folds=0,1,2,3,4

Each fold's exported model (`<models>/fold<k>/<version>/`, written by the
k-fold recipe) answers the images its fold held out, as they are and
perturbed as users' images differ (`benchmarks/perturb.py`): rescaled 0.75x
and 1.3x inside a canvas of the original size, shifted by 15 % of the width
either way, the top 20 % or the bottom 15 % cut off, gamma 0.6 and 1.6. The
truth moves with the image; landmarks a perturbation pushes out of the image
are excluded from the MRE and counted. Per perturbation it prints the MRE,
its ratio to the unperturbed MRE, SDR at 2 mm, the count of landmarks more
than 10 mm off and the largest error, all in the perturbed image's mm (its
pixels times the 0.1 mm spacing, as a user with that image would measure).
A rescaled image keeps its spacing, so those mm are the anatomy's times the
magnification: a model that is exactly as good on the magnified head shows
1.3x the error at 1.3x. The columns `anatomy` and `ratio` after it give the
MRE in the anatomy's own mm (divided by the magnification). The last line is
`worst_ratio=<max MRE ratio> over10mm=<total count> max_mm=<largest error>
worst_ratio_anatomy=<the same in the anatomy's mm>`; before it, one line per
landmark more than --list_mm (10) off: perturbation, image, landmark, error,
worst first, so a gross error that recurs under several perturbations shows
as one.
"""

import os
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.perturb import MAGNIFICATION, PERTURBATIONS
from lmk_tf import cli

flags.DEFINE_string("data", "../shared/data/isbi2015", "The isbi2015 directory (images/, senior.csv, junior.csv).")
flags.DEFINE_string("models", "saved_models/isbi2015_kfold", "Directory with fold<k>/<version>/ SavedModels.")
flags.DEFINE_list("folds", ["0", "1", "2", "3", "4"], "Folds to run (each must have its model).")
flags.DEFINE_integer("num_folds", 5, "K of the recipe's K-fold split.")
flags.DEFINE_integer("split_seed", 0, "Seed of the recipe's fold split.")
flags.DEFINE_integer("max_images", 0, "Use at most this many held-out images per fold (0: all).", lower_bound=0)
flags.DEFINE_list("perturbations", list(PERTURBATIONS), "Which perturbations (names as printed).")
flags.DEFINE_float("spacing", 0.1, "mm per pixel of the images.")
flags.DEFINE_float("list_mm", 10.0, "List every landmark more than this many mm off (the count stays > 10 mm).",
                   lower_bound=0.0)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    cli.import_tensorflow_quietly()
    from lmk_tf.data import sources
    from lmk_tf.serving.local import LocalModel

    unknown = [p for p in FLAGS.perturbations if p not in PERTURBATIONS]
    if unknown:
        raise SystemExit(f"isbi2015_robustness: unknown perturbation {unknown[0]!r}; known: {list(PERTURBATIONS)}")
    d = FLAGS.data
    samples, names = sources.table_source(
        os.path.join(d, "images"), [os.path.join(d, "senior.csv"), os.path.join(d, "junior.csv")],
        spacing=FLAGS.spacing, combine="mean")
    errors = {p: [] for p in FLAGS.perturbations}  # per perturbation: [images, L] mm, NaN = excluded
    image_ids = []
    t0 = time.time()
    for fold in (int(f) for f in FLAGS.folds):
        path = os.path.join(FLAGS.models, f"fold{fold}")
        if not os.path.isdir(path):
            raise SystemExit(f"isbi2015_robustness: {path} not found (train and export fold {fold} first)")
        model = LocalModel(path)
        _, held_out = sources.split(samples, fold=fold, num_folds=FLAGS.num_folds, seed=FLAGS.split_seed)
        if FLAGS.max_images:
            held_out = held_out[: FLAGS.max_images]
        for n, sample in enumerate(held_out):
            image = sample.load()
            array = np.asarray(image.array, np.float32)
            for name in FLAGS.perturbations:
                moved, truth = PERTURBATIONS[name](array, sample.points)
                out = model.predict({"image": moved[..., None], "spacing": np.asarray(image.spacing, np.float32)})
                err = np.linalg.norm((out["landmarks_index"] - truth) * np.asarray(image.spacing), axis=1)
                errors[name].append(err)
            image_ids.append(sample.image_id)
            print(f"fold {fold}: {n + 1}/{len(held_out)} images ({time.time() - t0:.0f}s)", flush=True)
    base = None
    worst_ratio, worst_anatomy, total_over, max_mm = 0.0, 0.0, 0, 0.0
    print(f"{'perturbation':<15}{'MRE mm':>8}{'ratio':>7}{'SDR2 %':>8}{'>10 mm':>8}{'max mm':>8}{'cut off':>9}"
          f"{'anatomy':>9}{'ratio':>7}")
    for name in FLAGS.perturbations:
        e = np.stack(errors[name])
        valid = e[~np.isnan(e)]
        mre = float(valid.mean())
        base = mre if base is None and name == "none" else base
        ratio = mre / base if base else float("nan")
        anatomy = mre / MAGNIFICATION.get(name, 1.0)
        anatomy_ratio = anatomy / base if base else float("nan")
        over = int((valid > 10).sum())
        print(f"{name:<15}{mre:>8.3f}{ratio:>7.2f}{100 * (valid <= 2).mean():>8.1f}{over:>8d}"
              f"{valid.max():>8.1f}{int(np.isnan(e).sum()):>9d}{anatomy:>9.3f}{anatomy_ratio:>7.2f}")
        if name != "none":
            worst_ratio = max(worst_ratio, ratio)
            worst_anatomy = max(worst_anatomy, anatomy_ratio)
        total_over += over
        max_mm = max(max_mm, float(valid.max()))
    gross = [(float(e), name, image_ids[i], names[j]) for name in FLAGS.perturbations
             for (i, j), e in np.ndenumerate(np.stack(errors[name])) if e > FLAGS.list_mm]
    for e, name, image_id, landmark in sorted(gross, reverse=True):
        anatomy = e / MAGNIFICATION.get(name, 1.0)
        print(f"over {FLAGS.list_mm:g} mm: {name} {image_id} {landmark} {e:.1f} mm (anatomy {anatomy:.1f})")
    print(f"worst_ratio={worst_ratio:.3f} over10mm={total_over} max_mm={max_mm:.1f} "
          f"worst_ratio_anatomy={worst_anatomy:.3f} images={len(errors[FLAGS.perturbations[0]])}")


if __name__ == "__main__":
    app.run(main)
