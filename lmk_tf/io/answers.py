"""The answers of lmk-predict and lmk-client, written in the format the user picked.

Both commands shape a model's outputs the same way (one result dict per
image: file, model, shape, spacing and per landmark its name, index, mm,
world, confidence and present) and hand them here; the commands only pick a
format and an output.

=============  ===================================================================
format         what is written
=============  ===================================================================
``json``       all results as one JSON list (stdout), or one JSON object per image
``csv``        one row per image and landmark: file, landmark, present,
               confidence, index_*, mm_* (array-axis order), world_x/y/z (LPS)
``mrk.json``   3D Slicer point list per image: one control point per landmark,
               labelled with its name, world mm through the image's own geometry
``fcsv``       the same as a Slicer .fcsv
=============  ===================================================================

Slicer files state their coordinate system (LPS, or RAS if asked). A landmark
the model reports absent (`present` false) stays in the list, flagged the way
Slicer flags a point it must not place: position status "missing" (no
position in .mrk.json, status 3 in .fcsv); its description gives the
model's confidence, as for every point.

Output (`output`): without one, json and csv go to stdout. With one, every
format writes one file per image, since a markups file holds one image's
points: a directory (existing, or ending in '/') gets <stem>.<format> per
image; a path ending in the format's suffix is that file (one image only);
anything else is a prefix: <prefix><stem>.<format>.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from lmk_tf.errors import ConfigError
from lmk_tf.image import Image
from lmk_tf.io.landmark_set import Landmarks
from lmk_tf.io.landmark_text import write_text
from lmk_tf.io.naming import image_stem
from lmk_tf.io.slicer_markups import WRITE_SYSTEMS, write_fcsv, write_mrk_json

FORMATS = ("json", "csv", "mrk.json", "fcsv")
SLICER_FORMATS = ("mrk.json", "fcsv")
COORDINATE_SYSTEMS = WRITE_SYSTEMS
OUTPUT_HELP = ("Where the answers go, one file per image (default: json and csv on stdout): a directory "
               "(existing, or ending in /) gets <stem>.<format> per image, a path ending in .<format> "
               "is the one image's file, anything else a prefix (<prefix><stem>.<format>).")


def check_format(fmt: str, output: str | None, coordinate_system: str = "LPS") -> None:
    """Refuses a format, output and coordinate system that do not go together."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if coordinate_system not in COORDINATE_SYSTEMS:
        raise ConfigError(f"coordinate system must be one of {', '.join(COORDINATE_SYSTEMS)}, "
                          f"got {coordinate_system!r}")
    if fmt in SLICER_FORMATS and not output:
        raise ConfigError(f"--format={fmt} writes one file per image; give --output (a directory, "
                          f"a prefix, or one .{fmt} file)")
    if fmt not in SLICER_FORMATS and coordinate_system != "LPS":
        raise ConfigError(f"--coordinate_system={coordinate_system} applies to mrk.json and fcsv; "
                          f"{fmt} world coordinates are LPS")


def output_paths(files: Sequence[str], fmt: str, output: str) -> list[str]:
    """The file each image's answer goes to (see the module docstring)."""
    suffix = f".{fmt}"
    if output.endswith(("/", os.sep)) or os.path.isdir(output):
        paths = [os.path.join(output, image_stem(f) + suffix) for f in files]
    elif output.lower().endswith(suffix):
        if len(files) > 1:
            raise ConfigError(f"--output={output} is one file but {len(files)} images were given; "
                              "give a directory or a prefix")
        paths = [output]
    else:
        paths = [output + image_stem(f) + suffix for f in files]
    seen = {}
    for f, p in zip(files, paths):
        if p in seen:
            raise ConfigError(f"{seen[p]} and {f} would both be answered in {p}; "
                              "rename one or answer them separately")
        seen[p] = f
    return paths


# The served contract's uncertainty outputs (lmk_tf.export.contract.UNCERTAINTY_OUTPUTS, a
# higher layer; tests/io/test_answers.py checks the two agree), shown when a model has them.
UNCERTAINTY_COLUMNS = ("expected_error_mm", "radius90_mm")


def format_text(results, fmt: str = "json") -> str:
    """One result dict or a list of them (each may carry "file") as JSON or CSV text.

    CSV has one row per image and landmark: file, landmark, present, confidence,
    then index_<axis>, mm_<axis> (array-axis order) and world_<x|y|z> columns for
    the largest dimensionality present (empty cells for 2D rows in a 3D table),
    then the predicted error and the --review_mm mark (empty when absent).
    """
    if fmt not in ("json", "csv"):
        raise ConfigError(f"text format must be json or csv, got {fmt!r}")
    items = [results] if isinstance(results, dict) else list(results)
    if fmt == "json":
        return json.dumps(items if not isinstance(results, dict) else results, indent=2)
    ndim = max((len(r["shape"]) for r in items), default=2)
    index_axes = ["row", "col"] if ndim == 2 else ["slice", "row", "col"]
    header = (["file", "landmark", "present", "confidence"]
              + [f"index_{a}" for a in index_axes] + [f"mm_{a}" for a in index_axes]
              + [f"world_{a}" for a in "xyz"[:ndim]] + list(UNCERTAINTY_COLUMNS) + ["review"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in items:
        pad = ndim - len(r["shape"])
        for lm in r["landmarks"]:
            # A 2D row in a 3D table: no slice axis in front, no z at the end.
            writer.writerow(
                [r.get("file", ""), lm["name"], int(lm["present"]), f"{lm['confidence']:.6g}"]
                + [""] * pad + [f"{v:.6g}" for v in lm["index"]]
                + [""] * pad + [f"{v:.6g}" for v in lm["mm"]]
                + [f"{v:.6g}" for v in lm["world"]] + [""] * pad
                + [f"{lm[k]:.4g}" if k in lm else "" for k in UNCERTAINTY_COLUMNS]
                + [int(lm["review"]) if "review" in lm else ""]
            )
    return out.getvalue()


def result_landmarks(result: dict) -> Landmarks:
    """A result's landmarks in index space; the absent ones as missing (NaN)."""
    marks = result["landmarks"]
    ndim = len(result["shape"])
    points = np.array([lm["index"] if lm["present"] else [np.nan] * ndim for lm in marks],
                      np.float64).reshape(len(marks), ndim)
    return Landmarks([lm["name"] for lm in marks], points, "index")


def _descriptions(result: dict) -> list[str]:
    return [f"confidence {lm['confidence']:.3f}" + ("" if lm["present"] else " (reported absent)")
            for lm in result["landmarks"]]


def write_slicer(path: str, result: dict, image: Image, fmt: str, coordinate_system: str = "LPS") -> None:
    """One image's result as a Slicer .mrk.json or .fcsv, in world mm through `image`'s geometry."""
    writer = write_mrk_json if fmt == "mrk.json" else write_fcsv
    writer(path, result_landmarks(result), image=image, coordinate_system=coordinate_system,
           descriptions=_descriptions(result))


def write_answers(results: Sequence[dict], images: Sequence[Image], fmt: str, output: str | None = None, *,
                  coordinate_system: str = "LPS", stdout=None) -> list[str]:
    """Writes the results in `fmt`: to `stdout` (json, csv) or one file per image under `output`.

    Args:
      results: one result dict per image, each with its "file".
      images: the images, in the same order (their geometry places Slicer points).
      fmt: one of FORMATS.
      output: None (stdout) or a directory, a prefix, or one file (see the module docstring).
      coordinate_system: 'LPS' or 'RAS', for the Slicer formats.
      stdout: where text goes without `output`, and the written paths with it
        (default sys.stdout).

    Returns:
      the files written (empty for stdout).
    """
    check_format(fmt, output, coordinate_system)
    if len(results) != len(images):
        raise ConfigError(f"{len(results)} results for {len(images)} images")
    stdout = sys.stdout if stdout is None else stdout
    if not output:
        stdout.write(format_text(list(results), fmt).rstrip("\n") + "\n")
        return []
    paths = output_paths([r["file"] for r in results], fmt, output)
    for path, result, image in zip(paths, results, images):
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if fmt in SLICER_FORMATS:
            write_slicer(path, result, image, fmt, coordinate_system)
        else:
            write_text(path, format_text(result if fmt == "json" else [result], fmt).rstrip("\n") + "\n")
        stdout.write(path + "\n")
    return paths
