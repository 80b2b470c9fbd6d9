"""Landmark sets and their files.

A `Landmarks` holds named points in one of two spaces:

* ``'index'``: continuous pixel/voxel indices in array-axis order
  (``[row, col]`` or ``[slice, row, col]``), as the served model outputs them;
* ``'world'``: LPS millimetres, as DICOM, ITK and Slicer use them.

A landmark that is not present (not annotated, outside the field of view) is a
row of NaN. Files, chosen by suffix unless ``fmt`` says otherwise:

=============  ==========  ======================================================
fmt            suffix      content
=============  ==========  ======================================================
``isbi_csv``   .csv        ISBI 2015 table ``image,<name>_x,<name>_y[,<name>_z]``,
                           one row per image, x = column, y = row (index space);
                           empty cells = missing. `read_landmark_table`.
``isbi_txt``   .txt        ISBI per-image file, one ``x,y`` line per landmark;
                           lines after the points (class labels) are ignored.
``fcsv``       .fcsv       3D Slicer markups fiducial CSV (world space).
``mrk_json``   .mrk.json   3D Slicer markups JSON (world space).
``json``       .json       ``{"space", "ndim", "landmarks": [{"name",
                           "position" or null}]}``.
=============  ==========  ======================================================

Slicer files may be in RAS; they are converted to LPS on reading (negate x and
y) and always written as LPS. Errors name the file and the line or field.

Given the image the points belong to (``image=``), `read_landmarks` returns
them in its index space whatever the file holds, and `write_landmarks`
converts them to the space the format holds (JSON keeps theirs).

This module is the entry point: the type lives in `landmark_set`, the ISBI and
JSON files in `landmark_tables`, the Slicer files in `slicer_markups`; every
name is importable from here.
"""

from __future__ import annotations

import os

from lmk_tf.errors import ConfigError, LandmarkFileError
from lmk_tf.image import Image
from lmk_tf.io.landmark_set import SPACES, Landmarks
from lmk_tf.io.landmark_tables import (
    read_isbi_txt,
    read_json,
    read_landmark_table,
    write_isbi_txt,
    write_json,
    write_landmark_table,
)
from lmk_tf.io.landmark_text import load_json
from lmk_tf.io.slicer_markups import read_fcsv, read_mrk_json, write_fcsv, write_mrk_json

__all__ = [
    "FORMATS",
    "SPACES",
    "Landmarks",
    "detect_landmark_format",
    "read_fcsv",
    "read_isbi_txt",
    "read_json",
    "read_landmark_table",
    "read_landmarks",
    "read_mrk_json",
    "write_fcsv",
    "write_isbi_txt",
    "write_json",
    "write_landmark_table",
    "write_landmarks",
    "write_mrk_json",
]

FORMATS = ("isbi_csv", "isbi_txt", "fcsv", "mrk_json", "json")
_SLICER_READERS = {"fcsv": read_fcsv, "mrk_json": read_mrk_json}
_SLICER_WRITERS = {"fcsv": write_fcsv, "mrk_json": write_mrk_json}


def detect_landmark_format(path, *, sniff: bool = True) -> str:
    """The landmark format of `path` from its suffix (and, for .json, content).

    Slicer also saves markups as plain ``.json``; with `sniff`, an existing
    .json file holding a 'markups' key is read as Slicer markups.
    """
    lower = os.fspath(path).lower()
    if lower.endswith(".mrk.json"):
        return "mrk_json"
    if lower.endswith(".json"):
        if sniff and os.path.isfile(path):
            doc = load_json(path)
            if isinstance(doc, dict) and "markups" in doc:
                return "mrk_json"
        return "json"
    for suffix, fmt in ((".csv", "isbi_csv"), (".txt", "isbi_txt"), (".fcsv", "fcsv")):
        if lower.endswith(suffix):
            return fmt
    raise LandmarkFileError(
        f"{path}: cannot tell the landmark format from the name; use .csv, .txt, .fcsv, "
        f".mrk.json or .json, or pass fmt= one of {FORMATS}"
    )


def _check_fmt(fmt, path, sniff: bool) -> str:
    fmt = detect_landmark_format(path, sniff=sniff) if fmt is None else fmt
    if fmt not in FORMATS:
        raise ConfigError(f"{path}: unknown landmark format {fmt!r}; choose one of {FORMATS}")
    return fmt


def read_landmarks(path, fmt: str | None = None, image: Image | None = None) -> Landmarks:
    """Read one image's landmarks from any supported file (see module docstring).

    With `image`, the landmarks come back in its continuous index space. An
    ISBI csv table is accepted when it holds exactly one image; use
    `read_landmark_table` for more.
    """
    fmt = _check_fmt(fmt, path, sniff=True)
    if fmt in _SLICER_READERS:
        return _SLICER_READERS[fmt](path, image=image)
    if fmt == "isbi_csv":
        table = read_landmark_table(path)
        if len(table) != 1:
            raise LandmarkFileError(
                f"{path}: table holds {len(table)} images; read it with read_landmark_table"
            )
        landmarks = next(iter(table.values()))
    else:
        landmarks = read_isbi_txt(path) if fmt == "isbi_txt" else read_json(path)
    return landmarks if image is None else landmarks.to_index(image)


def write_landmarks(path, landmarks: Landmarks, fmt: str | None = None, image: Image | None = None) -> None:
    """Write one image's landmarks; the format follows the suffix unless `fmt` is given.

    With `image`, the landmarks may be in either space: they are converted to
    the format's (index for ISBI txt, world for Slicer; JSON keeps theirs).
    The ISBI csv table needs image ids: use `write_landmark_table`.
    """
    fmt = _check_fmt(fmt, path, sniff=False)
    if fmt == "isbi_csv":
        raise ConfigError(f"{path}: ISBI csv tables hold many images; use write_landmark_table")
    if fmt in _SLICER_WRITERS:
        _SLICER_WRITERS[fmt](path, landmarks, image=image)
    elif fmt == "isbi_txt":
        write_isbi_txt(path, landmarks if image is None else landmarks.to_index(image))
    else:
        write_json(path, landmarks)
