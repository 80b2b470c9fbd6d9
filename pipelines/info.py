"""lmk-info: print an image's geometry and type.

  lmk-info scan.nii.gz
  lmk-info dicom_series/ --json
  lmk-info ceph.bmp --spacing=0.1

PATH is a DICOM file or series directory, NIfTI, MetaImage, NRRD or picture
(PNG/JPEG/BMP/TIFF). Prints shape, spacing, origin, direction, stored type,
value range, modality and, for DICOM, the geometry tags used.
"""

import json
import os
import sys
import warnings

from absl import flags

from lmk_tf.cli import run_app
from lmk_tf.errors import ConfigError

# The logic lives in `lmk_tf.io` (`read_image`, `describe`); this file only parses flags.
FLAGS = flags.FLAGS
flags.DEFINE_bool("json", False, "Print one JSON object instead of aligned text.")
flags.DEFINE_list(
    "spacing",
    None,
    "mm per pixel/voxel: one number, or one per array axis (row,col or slice,row,col). "
    "Overrides the file's spacing; files that state none show 1.0 mm (with a warning).",
)
flags.DEFINE_string("series_uid", None, "SeriesInstanceUID to read when a directory holds several.")
flags.DEFINE_bool(
    "allow_uneven_slices",
    False,
    "Read a DICOM series (or multi-frame file) whose slice steps differ by more than 1% "
    "(at their mean, with a warning) instead of refusing it.",
)


def _spacing_flag(values):
    if values is None:
        return None
    try:
        return [float(v) for v in values]
    except ValueError as e:
        raise ConfigError(f"--spacing must be numbers, got {','.join(values)!r}") from e


def main(argv):
    from lmk_tf.io import describe, format_description, read_image

    if len(argv) != 2:
        raise ConfigError(f"expected exactly one PATH, got {argv[1:]}")
    path = argv[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_image(
            path,
            series_uid=FLAGS.series_uid,
            spacing=_spacing_flag(FLAGS.spacing),
            allow_uneven_slices=FLAGS.allow_uneven_slices,
        )
    # One line per warning, not Python's two-line file:line format, with the
    # same program prefix as lmk_tf.cli's error line.
    prog = os.path.basename(sys.argv[0]) or "lmk-info"
    for w in caught:
        print(f"{prog}: warning: {w.message}", file=sys.stderr)
    info = describe(image)
    print(json.dumps(info, indent=2) if FLAGS.json else format_description(info))


def run():
    run_app(main)


if __name__ == "__main__":
    run()
