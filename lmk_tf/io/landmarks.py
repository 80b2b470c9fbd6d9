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
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Sequence

import numpy as np

from lmk_tf.errors import ConfigError, LandmarkFileError

SPACES = ("index", "world")
FORMATS = ("isbi_csv", "isbi_txt", "fcsv", "mrk_json", "json")


@dataclasses.dataclass
class Landmarks:
    """Named points, missing ones as NaN rows.

    Attributes:
      names: one unique name per landmark.
      points: float64 [L, ndim]; array-axis order in 'index' space, LPS (x, y[, z])
        in 'world' space.
      space: 'index' or 'world'.
    """

    names: list[str]
    points: np.ndarray
    space: str = "index"

    def __post_init__(self):
        self.names = [str(n) for n in self.names]
        points = np.asarray(self.points, dtype=np.float64)
        if points.ndim == 1 and points.size == 0:
            points = points.reshape(0, 2)
        if points.ndim != 2 or points.shape[1] not in (2, 3):
            raise ConfigError(f"landmark points must have shape [L, 2] or [L, 3], got {points.shape}")
        if points.shape[0] != len(self.names):
            raise ConfigError(f"{len(self.names)} landmark names for {points.shape[0]} points")
        if len(set(self.names)) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ConfigError(f"landmark names must be unique, repeated: {dup}")
        if self.space not in SPACES:
            raise ConfigError(f"landmark space must be one of {SPACES}, got {self.space!r}")
        finite = np.isfinite(points)
        partial = finite.any(axis=1) & ~finite.all(axis=1)
        if np.any(partial):
            i = int(np.argmax(partial))
            raise ConfigError(
                f"landmark {self.names[i]!r} has some but not all coordinates: {points[i].tolist()}"
            )
        points[~finite.all(axis=1)] = np.nan
        self.points = points

    @property
    def ndim(self) -> int:
        return self.points.shape[1]

    @property
    def present(self) -> np.ndarray:
        """bool [L]: which landmarks have a position."""
        return np.all(np.isfinite(self.points), axis=1)

    def __len__(self) -> int:
        return len(self.names)

    def position(self, name: str) -> np.ndarray:
        """The point of landmark `name` (NaNs if missing)."""
        try:
            return self.points[self.names.index(name)]
        except ValueError:
            raise ConfigError(f"no landmark named {name!r}; have {self.names}") from None

    def reindex(self, names: Sequence[str]) -> Landmarks:
        """These landmarks in the order of `names`; names not held become missing."""
        lookup = dict(zip(self.names, self.points))
        points = np.array([lookup.get(n, np.full(self.ndim, np.nan)) for n in names]).reshape(
            len(names), self.ndim
        )
        return Landmarks(list(names), points, self.space)

    def _check_image(self, image) -> None:
        if image.ndim != self.ndim:
            raise ConfigError(
                f"{self.ndim}D landmarks do not fit a {image.ndim}D image of shape {list(image.shape)}"
            )

    def to_index(self, image) -> Landmarks:
        """These landmarks in `image`'s continuous index space."""
        self._check_image(image)
        if self.space == "index":
            return Landmarks(list(self.names), self.points.copy(), "index")
        return Landmarks(list(self.names), image.world_to_index(self.points), "index")

    def to_world(self, image) -> Landmarks:
        """These landmarks in LPS world mm, using `image`'s geometry."""
        self._check_image(image)
        if self.space == "world":
            return Landmarks(list(self.names), self.points.copy(), "world")
        return Landmarks(list(self.names), image.index_to_world(self.points), "world")


# --------------------------------------------------------------------------- helpers


def _fail(path, where: str, message: str) -> LandmarkFileError:
    return LandmarkFileError(f"{path}: {where}: {message}" if where else f"{path}: {message}")


def _read_text(path) -> str:
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except FileNotFoundError:
        raise LandmarkFileError(f"{path}: no such file or directory") from None
    except IsADirectoryError:
        raise LandmarkFileError(f"{path}: is a directory, not a landmark file") from None
    except PermissionError:
        raise LandmarkFileError(f"{path}: permission denied") from None
    except UnicodeDecodeError as e:
        raise LandmarkFileError(f"{path}: not a text file ({e.reason} at byte {e.start})") from None


def _write_text(path, text: str) -> None:
    path = os.fspath(path)
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as e:
        raise LandmarkFileError(f"{path}: cannot write ({e.strerror or e})") from None


def _number(text: str, path, where: str) -> float:
    """A float from a cell; empty or 'nan' means missing."""
    text = text.strip()
    if text == "" or text.lower() == "nan":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise _fail(path, where, f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise _fail(path, where, f"expected a finite number, got {text!r}")
    return value


def _num_str(value: float) -> str:
    """Shortest text that reads back as exactly the same float; '' when missing."""
    return "" if not math.isfinite(value) else repr(float(value))


def _require_space(landmarks: Landmarks, space: str, fmt: str, path) -> None:
    if landmarks.space != space:
        hint = "to_world(image)" if space == "world" else "to_index(image)"
        raise ConfigError(
            f"{path}: {fmt} files hold {space}-space landmarks, got {landmarks.space!r} space; "
            f"convert with Landmarks.{hint} first"
        )


# --------------------------------------------------------------------------- ISBI table

_AXES = ("x", "y", "z")


def read_landmark_table(path) -> dict[str, Landmarks]:
    """Read an ISBI 2015 style table: ``{image id: Landmarks}`` in index space.

    Header ``image,<name>_x,<name>_y,...`` (or ``_x,_y,_z`` triples for 3D);
    x is the column, y the row (and z the slice), converted to array-axis order.
    """
    text = _read_text(path)
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise _fail(path, "line 1", "empty file, expected a header 'image,<name>_x,<name>_y,...'")
    header = [h.strip() for h in rows[0]]
    names, ndim = _parse_table_header(header, path)
    table: dict[str, Landmarks] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise _fail(path, f"line {line_no}", f"{len(row)} fields, the header has {len(header)}")
        image_id = row[0].strip()
        if not image_id:
            raise _fail(path, f"line {line_no}", "empty image id")
        if image_id in table:
            raise _fail(path, f"line {line_no}", f"image {image_id!r} appears twice")
        values = np.array(
            [
                _number(cell, path, f"line {line_no}, field {field!r}")
                for field, cell in zip(header[1:], row[1:])
            ]
        ).reshape(len(names), ndim)
        # File order is x, y[, z]; array-axis order is the reverse.
        points = values[:, ::-1]
        finite = np.isfinite(points)
        partial = finite.any(axis=1) & ~finite.all(axis=1)
        if np.any(partial):
            name = names[int(np.argmax(partial))]
            raise _fail(path, f"line {line_no}", f"landmark {name!r} has only some coordinates")
        table[image_id] = Landmarks(list(names), points, "index")
    return table


def _parse_table_header(header: list[str], path) -> tuple[list[str], int]:
    if header[0].lower() != "image":
        raise _fail(path, "line 1", f"first column must be 'image', got {header[0]!r}")
    fields = header[1:]
    ndim = 3 if len(fields) >= 3 and fields[2].endswith("_z") else 2
    if not fields or len(fields) % ndim:
        raise _fail(path, "line 1", f"{len(fields)} coordinate columns is not a multiple of {ndim}")
    names = []
    for start in range(0, len(fields), ndim):
        group = fields[start : start + ndim]
        name = group[0][:-2]
        expected = [f"{name}_{a}" for a in _AXES[:ndim]]
        if group != expected or not name:
            raise _fail(path, "line 1", f"columns {group} should be {expected}")
        names.append(name)
    if len(set(names)) != len(names):
        raise _fail(path, "line 1", "a landmark name appears twice")
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
        _require_space(lm, "index", "ISBI csv", path)
        if lm.names != names or lm.ndim != ndim:
            raise ConfigError(
                f"{path}: image {image_id!r} has landmarks {lm.names} ({lm.ndim}D), "
                f"the first has {names} ({ndim}D); a table needs the same set"
            )
        values = lm.points[:, ::-1].reshape(-1)
        writer.writerow([image_id] + [_num_str(v) for v in values])
    _write_text(path, out.getvalue())


# --------------------------------------------------------------------------- ISBI txt


def read_isbi_txt(path, names: Sequence[str] | None = None) -> Landmarks:
    """Read an ISBI per-image file: ``x,y`` lines, then ignored extra lines.

    With `names`, exactly that many leading lines are points; without, every
    leading ``x,y`` line is, named landmark_1..N. ``nan,nan`` marks a missing one.
    """
    lines = _read_text(path).splitlines()
    points = []
    for line_no, line in enumerate(lines, start=1):
        if names is not None and len(points) == len(names):
            break
        cells = line.split(",")
        if len(cells) != 2:
            if names is None and points:
                break  # the extra lines after the points
            raise _fail(path, f"line {line_no}", f"expected 'x,y', got {line.strip()!r}")
        x = _number(cells[0], path, f"line {line_no}")
        y = _number(cells[1], path, f"line {line_no}")
        if math.isnan(x) != math.isnan(y):
            raise _fail(path, f"line {line_no}", f"only one coordinate in {line.strip()!r}")
        points.append((y, x))  # array-axis order: row, col
    if names is not None and len(points) < len(names):
        raise _fail(path, f"line {len(lines)}", f"{len(points)} points, expected {len(names)}")
    if not points:
        raise _fail(path, "line 1", "no 'x,y' lines")
    if names is None:
        names = [f"landmark_{i}" for i in range(1, len(points) + 1)]
    return Landmarks(list(names), np.array(points), "index")


def write_isbi_txt(path, landmarks: Landmarks) -> None:
    """Write 2D index-space landmarks as ISBI ``x,y`` lines (missing: ``nan,nan``)."""
    _require_space(landmarks, "index", "ISBI txt", path)
    if landmarks.ndim != 2:
        raise ConfigError(f"{path}: ISBI txt files hold 2D landmarks, got {landmarks.ndim}D")
    lines = []
    for row, col in landmarks.points:
        lines.append("nan,nan" if math.isnan(row) else f"{_num_str(col)},{_num_str(row)}")
    _write_text(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- Slicer fcsv

_FCSV_COLUMNS = "id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID".split(",")
_COORDINATE_SYSTEMS = {"LPS": "LPS", "RAS": "RAS", "1": "LPS", "0": "RAS"}


def read_fcsv(path) -> Landmarks:
    """Read a 3D Slicer fiducial .fcsv file as LPS world landmarks.

    Files without a CoordinateSystem line come from Slicer before 4.11, which
    always wrote RAS. Empty coordinates mean a missing point.
    """
    text = _read_text(path)
    system, columns = "RAS", list(_FCSV_COLUMNS)
    names, points = [], []
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if row[0].startswith("#"):
            comment = ",".join(row).lstrip("#").strip()
            key, _, value = comment.partition("=")
            key, value = key.strip().lower(), value.strip()
            if key == "coordinatesystem":
                if value.upper() not in _COORDINATE_SYSTEMS:
                    raise _fail(path, f"line {line_no}", f"unknown CoordinateSystem {value!r}")
                system = _COORDINATE_SYSTEMS[value.upper()]
            elif key == "columns":
                columns = [c.strip() for c in value.split(",")]
            continue
        record = dict(zip(columns, row))
        missing = [c for c in ("x", "y", "z") if c not in record]
        if missing:
            raise _fail(path, f"line {line_no}", f"no {missing} field ({len(row)} fields)")
        xyz = [_number(record[c], path, f"line {line_no}, field {c!r}") for c in ("x", "y", "z")]
        label = record.get("label", "").strip() or f"landmark_{len(names) + 1}"
        if label in names:
            raise _fail(path, f"line {line_no}", f"label {label!r} appears twice")
        names.append(label)
        points.append(xyz)
    if not names:
        raise _fail(path, "", "no control points")
    return _slicer_landmarks(names, points, system, path)


def _slicer_landmarks(names, points, system, path) -> Landmarks:
    arr = np.array(points, dtype=np.float64).reshape(len(names), 3)
    if system == "RAS":
        arr[:, :2] *= -1.0
    try:
        return Landmarks(names, arr, "world")
    except ConfigError as e:
        raise LandmarkFileError(f"{path}: {e}") from None


def write_fcsv(path, landmarks: Landmarks) -> None:
    """Write 3D world landmarks as a Slicer 4.11+ .fcsv in LPS.

    The format has no notion of a missing point (Slicer would read an empty
    coordinate as 0), so missing landmarks are left out; `Landmarks.reindex`
    restores them after reading.
    """
    _require_space(landmarks, "world", "fcsv", path)
    if landmarks.ndim != 3:
        raise ConfigError(f"{path}: Slicer markups hold 3D points, got {landmarks.ndim}D")
    out = io.StringIO()
    out.write("# Markups fiducial file version = 4.11\n")
    out.write("# CoordinateSystem = LPS\n")
    out.write("# columns = " + ",".join(_FCSV_COLUMNS) + "\n")
    writer = csv.writer(out, lineterminator="\n")
    for i, (name, point) in enumerate(zip(landmarks.names, landmarks.points), start=1):
        if not np.all(np.isfinite(point)):
            continue
        writer.writerow(
            [str(i)] + [_num_str(v) for v in point] + ["0", "0", "0", "1", "1", "1", "0", name, "", ""]
        )
    _write_text(path, out.getvalue())


# --------------------------------------------------------------------------- Slicer mrk.json

_MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
    "Resources/Schema/markups-schema-v1.0.3.json#"
)


def _load_json(path):
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise _fail(path, f"line {e.lineno}", f"invalid JSON ({e.msg})") from None


def read_mrk_json(path) -> Landmarks:
    """Read the first markups node of a Slicer .mrk.json as LPS world landmarks."""
    doc = _load_json(path)
    markups = doc.get("markups") if isinstance(doc, dict) else None
    if not isinstance(markups, list) or not markups or not isinstance(markups[0], dict):
        raise _fail(path, "field 'markups'", "expected a non-empty list of markups objects")
    node = markups[0]
    system = str(node.get("coordinateSystem", "LPS")).upper()
    if system not in _COORDINATE_SYSTEMS:
        raise _fail(path, "field 'markups[0].coordinateSystem'", f"unknown value {system!r}")
    control = node.get("controlPoints", [])
    if not isinstance(control, list):
        raise _fail(path, "field 'markups[0].controlPoints'", "expected a list")
    names, points = [], []
    for i, cp in enumerate(control):
        field = f"markups[0].controlPoints[{i}]"
        where = f"field '{field}'"
        if not isinstance(cp, dict):
            raise _fail(path, where, f"expected an object, got {cp!r}")
        label = str(cp.get("label") or f"landmark_{i + 1}")
        if label in names:
            raise _fail(path, where, f"label {label!r} appears twice")
        status = cp.get("positionStatus", "defined")
        if status == "missing":
            xyz = [math.nan] * 3
        else:
            pos = cp.get("position")
            if (
                not isinstance(pos, list)
                or len(pos) != 3
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in pos)
            ):
                raise _fail(path, f"field '{field}.position'", f"expected 3 finite numbers, got {pos!r}")
            xyz = [float(v) for v in pos]
        names.append(label)
        points.append(xyz)
    if not names:
        raise _fail(path, "field 'markups[0].controlPoints'", "no control points")
    return _slicer_landmarks(names, points, _COORDINATE_SYSTEMS[system], path)


def write_mrk_json(path, landmarks: Landmarks) -> None:
    """Write 3D world landmarks as a Slicer markups fiducial .mrk.json in LPS.

    Missing landmarks keep their place with positionStatus 'missing'.
    """
    _require_space(landmarks, "world", "mrk.json", path)
    if landmarks.ndim != 3:
        raise ConfigError(f"{path}: Slicer markups hold 3D points, got {landmarks.ndim}D")
    control = []
    for i, (name, point) in enumerate(zip(landmarks.names, landmarks.points), start=1):
        defined = bool(np.all(np.isfinite(point)))
        control.append(
            {
                "id": str(i),
                "label": name,
                "description": "",
                "associatedNodeID": "",
                "position": [float(v) for v in point] if defined else [0.0, 0.0, 0.0],
                "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                "selected": True,
                "locked": False,
                "visibility": True,
                "positionStatus": "defined" if defined else "missing",
            }
        )
    doc = {
        "@schema": _MARKUPS_SCHEMA,
        "markups": [
            {
                "type": "Fiducial",
                "coordinateSystem": "LPS",
                "coordinateUnits": "mm",
                "controlPoints": control,
            }
        ],
    }
    _write_text(path, json.dumps(doc, indent=4) + "\n")


# --------------------------------------------------------------------------- plain JSON


def read_json(path) -> Landmarks:
    """Read the package's plain JSON landmark file."""
    doc = _load_json(path)
    if not isinstance(doc, dict):
        raise _fail(path, "top level", f"expected an object, got {type(doc).__name__}")
    space = doc.get("space")
    if space not in SPACES:
        raise _fail(path, "field 'space'", f"expected one of {SPACES}, got {space!r}")
    ndim = doc.get("ndim")
    if ndim not in (2, 3):
        raise _fail(path, "field 'ndim'", f"expected 2 or 3, got {ndim!r}")
    entries = doc.get("landmarks")
    if not isinstance(entries, list):
        raise _fail(path, "field 'landmarks'", f"expected a list, got {entries!r}")
    names, points = [], []
    for i, entry in enumerate(entries):
        field = f"landmarks[{i}]"
        where = f"field '{field}'"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise _fail(path, where, f"expected an object with a non-empty 'name', got {entry!r}")
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
            raise _fail(
                path, f"field '{field}.position'", f"expected {ndim} finite numbers or null, got {pos!r}"
            )
        if entry["name"] in names:
            raise _fail(path, where, f"name {entry['name']!r} appears twice")
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
    _write_text(path, json.dumps(doc, indent=2) + "\n")


# --------------------------------------------------------------------------- dispatch


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
            doc = _load_json(path)
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


def read_landmarks(path, fmt: str | None = None) -> Landmarks:
    """Read one image's landmarks from any supported file (see module docstring).

    An ISBI csv table is accepted when it holds exactly one image; use
    `read_landmark_table` for more.
    """
    fmt = _check_fmt(fmt, path, sniff=True)
    if fmt == "isbi_csv":
        table = read_landmark_table(path)
        if len(table) != 1:
            raise LandmarkFileError(
                f"{path}: table holds {len(table)} images; read it with read_landmark_table"
            )
        return next(iter(table.values()))
    readers = {"isbi_txt": read_isbi_txt, "fcsv": read_fcsv, "mrk_json": read_mrk_json, "json": read_json}
    return readers[fmt](path)


def write_landmarks(path, landmarks: Landmarks, fmt: str | None = None) -> None:
    """Write one image's landmarks; the format follows the suffix unless `fmt` is given.

    The ISBI csv table needs image ids: use `write_landmark_table`.
    """
    fmt = _check_fmt(fmt, path, sniff=False)
    if fmt == "isbi_csv":
        raise ConfigError(f"{path}: ISBI csv tables hold many images; use write_landmark_table")
    writers = {"isbi_txt": write_isbi_txt, "fcsv": write_fcsv, "mrk_json": write_mrk_json, "json": write_json}
    writers[fmt](path, landmarks)
