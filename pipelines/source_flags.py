"""Flags that pick the images a command works on (shared by prepare and evaluate).

A command that uses them calls `flags.adopt_module_key_flags(source_flags)`, so
its --help lists them as its own.
"""

from absl import flags

from lmk_tf.data import sources
from lmk_tf.errors import ConfigError

flags.DEFINE_integer("synthetic", None, "Use N generated synthetic images instead of files "
                     "(with --ndim and --seed).", lower_bound=1)
flags.DEFINE_enum("ndim", "2", ["2", "3"], "Dimensionality of synthetic images.")
flags.DEFINE_integer("seed", 0, "Seed of synthetic images and of the fold split.")
flags.DEFINE_string("images", None, "Directory of the image files named in --landmarks.")
flags.DEFINE_list("landmarks", None, "Landmark table(s), one per annotator: CSV with header "
                  "image,<name>_x,<name>_y,... in pixels (x the column); several are combined "
                  "by --combine.")
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
    if FLAGS.synthetic and FLAGS.images:
        raise ConfigError("give either --synthetic or --images/--landmarks, not both")
    if FLAGS.synthetic:
        return sources.synthetic_source(int(FLAGS.ndim), FLAGS.synthetic, FLAGS.seed)
    if not FLAGS.images or not FLAGS.landmarks:
        raise ConfigError("give --images and --landmarks (or --synthetic=N)")
    return sources.table_source(FLAGS.images, FLAGS.landmarks, spacing=FLAGS.spacing, combine=FLAGS.combine)


def split_source(samples):
    """(train, held_out) by --fold/--num_folds/--seed."""
    return sources.split(samples, fold=FLAGS.fold, num_folds=FLAGS.num_folds, seed=FLAGS.seed)
