"""The ISBI 2015 landmark files (the csv table, the per-image txt) and the package's plain JSON.

All three are written by this package or by the ISBI challenge, not by a
viewer: the ISBI files hold index-space points with x = column and y = row,
the JSON either space, with the space named in the file.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence

import numpy as np

from lmk_tf.errors import ConfigError
from lmk_tf.io.landmark_set import SPACES, Landmarks
from lmk_tf.io.landmark_text import fail, load_json, num_str, number, read_text, require_space, write_text

# --------------------------------------------------------------------------- ISBI table

_AXES = ("x", "y", "z")


def read_landmark_table(path) -> dict[str, Landmarks]:
    """Read an ISBI 2015 style table: ``{image id: Landmarks}`` in index space.

    Header ``image,<name>_x,<name>_y,...`` (or ``_x,_y,_z`` triples for 3D);
    x is the column, y the row (and z the slice), converted to array-axis order.
    """
    text = read_text(path)
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise fail(path, "line 1", "empty file, expected a header 'image,<name>_x,<name>_y,...'")
    header = [h.strip() for h in rows[0]]
    names, ndim = _parse_table_header(header, path)
    table: dict[str, Landmarks] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise fail(path, f"line {line_no}", f"{len(row)} fields, the header has {len(header)}")
        image_id = row[0].strip()
        if not image_id:
            raise fail(path, f"line {line_no}", "empty image id")
        if image_id in table:
            raise fail(path, f"line {line_no}", f"image {image_id!r} appears twice")
        values = np.array(
            [
                number(cell, path, f"line {line_no}, field {field!r}")
                for field, cell in zip(header[1:], row[1:])
            ]
        ).reshape(len(names), ndim)
        # File order is x, y[, z]; array-axis order is the reverse.
        points = values[:, ::-1]
        finite = np.isfinite(points)
        partial = finite.any(axis=1) & ~finite.all(axis=1)
        if np.any(partial):
            name = names[int(np.argmax(partial))]
            raise fail(path, f"line {line_no}", f"landmark {name!r} has only some coordinates")
        table[image_id] = Landmarks(list(names), points, "index")
    return table


def _parse_table_header(header: list[str], path) -> tuple[list[str], int]:
    if header[0].lower() != "image":
        raise fail(path, "line 1", f"first column must be 'image', got {header[0]!r}")
    fields = header[1:]
    ndim = 3 if len(fields) >= 3 and fields[2].endswith("_z") else 2
    if not fields or len(fields) % ndim:
        raise fail(path, "line 1", f"{len(fields)} coordinate columns is not a multiple of {ndim}")
    names = []
    for start in range(0, len(fields), ndim):
        group = fields[start : start + ndim]
        name = group[0][:-2]
        expected = [f"{name}_{a}" for a in _AXES[:ndim]]
        if group != expected or not name:
            raise fail(path, "line 1", f"columns {group} should be {expected}")
        names.append(name)
    if len(set(names)) != len(names):
        raise fail(path, "line 1", "a landmark name appears twice")
    return names, ndim


def write_landmark_table(path, table: dict[str, Landmarks]) -> None:
    """Write ``{image id: Landmarks}`` (index space, same names) as an ISBI table."""
    if not table:
        raise ConfigError(f"{path}: no images to write")
    first = next(iter(table.values()))
    names, ndim = first.names, first.ndim
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["image"] + [f"{n}_{a}" for n in names for a in _AXES[:ndim]])
    for image_id, lm in table.items():
        require_space(lm, "index", "ISBI csv", path)
        if lm.names != names or lm.ndim != ndim:
            raise ConfigError(
                f"{path}: image {image_id!r} has landmarks {lm.names} ({lm.ndim}D), "
                f"the first has {names} ({ndim}D); a table needs the same set"
            )
        values = lm.points[:, ::-1].reshape(-1)
        writer.writerow([image_id] + [num_str(v) for v in values])
    write_text(path, out.getvalue())


# --------------------------------------------------------------------------- ISBI txt


def read_isbi_txt(path, names: Sequence[str] | None = None) -> Landmarks:
    """Read an ISBI per-image file: ``x,y`` lines, then ignored extra lines.

    With `names`, exactly that many leading lines are points; without, every
    leading ``x,y`` line is, named landmark_1..N. ``nan,nan`` marks a missing one.
    """
    lines = read_text(path).splitlines()
    points = []
    for line_no, line in enumerate(lines, start=1):
        if names is not None and len(points) == len(names):
            break
        cells = line.split(",")
        if len(cells) != 2:
            if names is None and points:
                break  # the extra lines after the points
            raise fail(path, f"line {line_no}", f"expected 'x,y', got {line.strip()!r}")
        x = number(cells[0], path, f"line {line_no}")
        y = number(cells[1], path, f"line {line_no}")
        if math.isnan(x) != math.isnan(y):
            raise fail(path, f"line {line_no}", f"only one coordinate in {line.strip()!r}")
        points.append((y, x))  # array-axis order: row, col
    if names is not None and len(points) < len(names):
        raise fail(path, f"line {len(lines)}", f"{len(points)} points, expected {len(names)}")
    if not points:
        raise fail(path, "line 1", "no 'x,y' lines")
    if names is None:
        names = [f"landmark_{i}" for i in range(1, len(points) + 1)]
    return Landmarks(list(names), np.array(points), "index")


def write_isbi_txt(path, landmarks: Landmarks) -> None:
    """Write 2D index-space landmarks as ISBI ``x,y`` lines (missing: ``nan,nan``)."""
    require_space(landmarks, "index", "ISBI txt", path)
    if landmarks.ndim != 2:
        raise ConfigError(f"{path}: ISBI txt files hold 2D landmarks, got {landmarks.ndim}D")
    lines = []
    for row, col in landmarks.points:
        lines.append("nan,nan" if math.isnan(row) else f"{num_str(col)},{num_str(row)}")
    write_text(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- plain JSON


def read_json(path) -> Landmarks:
    """Read the package's plain JSON landmark file."""
    doc = load_json(path)
    if not isinstance(doc, dict):
        raise fail(path, "top level", f"expected an object, got {type(doc).__name__}")
    space = doc.get("space")
    if space not in SPACES:
        raise fail(path, "field 'space'", f"expected one of {SPACES}, got {space!r}")
    ndim = doc.get("ndim")
    if ndim not in (2, 3):
        raise fail(path, "field 'ndim'", f"expected 2 or 3, got {ndim!r}")
    entries = doc.get("landmarks")
    if not isinstance(entries, list):
        raise fail(path, "field 'landmarks'", f"expected a list, got {entries!r}")
    names, points = [], []
    for i, entry in enumerate(entries):
        field = f"landmarks[{i}]"
        where = f"field '{field}'"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise fail(path, where, f"expected an object with a non-empty 'name', got {entry!r}")
        pos = entry.get("position")
        if pos is None:
            points.append([math.nan] * ndim)
        elif (
            isinstance(pos, list)
            and len(pos) == ndim
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pos)
        ):
            points.append([float(v) for v in pos])
        else:
            raise fail(
                path, f"field '{field}.position'", f"expected {ndim} finite numbers or null, got {pos!r}"
            )
        if entry["name"] in names:
            raise fail(path, where, f"name {entry['name']!r} appears twice")
        names.append(entry["name"])
    return Landmarks(names, np.array(points, dtype=np.float64).reshape(len(names), ndim), space)


def write_json(path, landmarks: Landmarks) -> None:
    """Write the package's plain JSON landmark file (missing -> null)."""
    doc = {
        "space": landmarks.space,
        "ndim": landmarks.ndim,
        "landmarks": [
            {"name": n, "position": [float(v) for v in p] if np.all(np.isfinite(p)) else None}
            for n, p in zip(landmarks.names, landmarks.points)
        ],
    }
    write_text(path, json.dumps(doc, indent=2) + "\n")

