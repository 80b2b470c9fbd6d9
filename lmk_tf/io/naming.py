"""File names that stand for one image: the stem an image file and its landmark file share.

`lmk-prepare --images=DIR --landmarks=DIR` pairs a volume with its landmark file
by stem (case1.nii.gz with case1.mrk.json), and `lmk-predict --output=DIR`
names each answer after its image (case1.mrk.json), so both strip suffixes the
same way. A DICOM series directory's stem is its name.
"""

from __future__ import annotations

import os

from lmk_tf.io.formats import FORMATS

# Longest first, so that .nii.gz wins over .gz-less .nii and .mrk.json over .json.
IMAGE_SUFFIXES = tuple(sorted({s for f in FORMATS for s in f.suffixes}, key=len, reverse=True))
LANDMARK_SUFFIXES = (".mrk.json", ".fcsv", ".json")


def _strip(name: str, suffixes) -> str:
    lower = name.lower()
    for suffix in suffixes:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def image_stem(path) -> str:
    """case1 for .../case1.nii.gz, .../case1.mha or the DICOM series directory .../case1/."""
    return _strip(os.path.basename(os.fspath(path).rstrip("/\\")), IMAGE_SUFFIXES)


def landmark_stem(path) -> str:
    """case1 for .../case1.mrk.json, .../case1.fcsv or .../case1.json."""
    return _strip(os.path.basename(os.fspath(path)), LANDMARK_SUFFIXES)
