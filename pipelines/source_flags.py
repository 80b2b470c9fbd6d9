"""Flags that pick the images a command works on (shared by prepare and evaluate).

A command that uses them calls `flags.adopt_module_key_flags(source_flags)`, so
its --help lists them as its own.
"""

import os

from absl import flags

from lmk_tf.data import sources
from lmk_tf.errors import ConfigError

flags.DEFINE_integer("synthetic", None, "Use N generated synthetic images instead of files "
                     "(with --ndim and --seed).", lower_bound=1)
flags.DEFINE_enum("ndim", "2", ["2", "3"], "Dimensionality of synthetic images.")
flags.DEFINE_integer("seed", 0, "Seed of synthetic images and of the fold split.")
flags.DEFINE_string("images", None, "Directory of the images: the files named in --landmarks tables, or "
                    "volumes (NIfTI, NRRD, MetaImage, DICOM series folders) paired by name with the files "
                    "of a --landmarks directory.")
flags.DEFINE_list("landmarks", None, "A directory with one landmark file per image (3D Slicer .mrk.json or "
                  ".fcsv in world mm, LPS or RAS as the file says; case1.mrk.json for case1.nii.gz), or "
                  "landmark table(s), one per annotator: CSV with header image,<name>_x,<name>_y,... in "
                  "pixels (x the column); several are combined by --combine.")
flags.DEFINE_string("manifest", None, "CSV with columns image,landmarks (paths relative to it), one row "
                    "per image: instead of --images/--landmarks pairing by name.")
flags.DEFINE_bool("allow_outside", False, "A landmark outside its image is marked absent instead of "
                  "refused (files with one landmark per image).")
flags.DEFINE_enum("combine", "mean", ["mean", "first"], "Ground truth from several annotators: "
                  "their mean, or the first file only (e.g. the senior doctor).")
flags.DEFINE_float("spacing", None, "mm per pixel of every image, overriding the files' own; "
                   "needed for PNG/JPEG/BMP (ISBI 2015 cephalograms: 0.1).")
flags.DEFINE_integer("fold", -1, "Held-out fold of a K-fold split seeded by --seed "
                     "(-1: no split, all images).")
flags.DEFINE_integer("num_folds", 5, "K of the K-fold split.", lower_bound=2)

FLAGS = flags.FLAGS


def load_source():
    """(samples, landmark names) from the flags."""
    given = [name for name, on in (("--synthetic", FLAGS.synthetic), ("--images/--landmarks",
             FLAGS.images or FLAGS.landmarks), ("--manifest", FLAGS.manifest)) if on]
    if len(given) > 1:
        raise ConfigError(f"give one of --synthetic, --images/--landmarks or --manifest, not {' and '.join(given)}")
    if FLAGS.synthetic:
        return sources.synthetic_source(int(FLAGS.ndim), FLAGS.synthetic, FLAGS.seed)
    if FLAGS.manifest:
        return sources.volume_source(sources.read_manifest(FLAGS.manifest), spacing=FLAGS.spacing,
                                     allow_outside=FLAGS.allow_outside)
    if not FLAGS.images or not FLAGS.landmarks:
        raise ConfigError("give --images and --landmarks (or --manifest, or --synthetic=N)")
    if len(FLAGS.landmarks) == 1 and os.path.isdir(FLAGS.landmarks[0]):
        pairs = sources.pair_by_stem(FLAGS.images, FLAGS.landmarks[0])
        return sources.volume_source(pairs, spacing=FLAGS.spacing, allow_outside=FLAGS.allow_outside)
    return sources.table_source(FLAGS.images, FLAGS.landmarks, spacing=FLAGS.spacing, combine=FLAGS.combine)


def split_source(samples):
    """(train, held_out) by --fold/--num_folds/--seed."""
    return sources.split(samples, fold=FLAGS.fold, num_folds=FLAGS.num_folds, seed=FLAGS.seed)
