"""3D Slicer markups files: the fiducial .fcsv and the markups .mrk.json.

Both hold 3D world points. Files may be in RAS; they are converted to LPS on
reading (negate x and y) and always written as LPS.

Every reader and writer takes the image the points belong to as `image=`
(optional): a writer then accepts landmarks in either space and converts them
to world mm with the image's geometry, a reader returns them in the image's
continuous index space. A 2D image is shown by Slicer as one slice in the
plane z = 0 (ITK's 2D -> 3D convention), so its points are written with
z = 0 and read back only if they lie in that plane.
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np

from lmk_tf.errors import ConfigError, LandmarkFileError
from lmk_tf.image import Image
from lmk_tf.io.landmark_set import Landmarks
from lmk_tf.io.landmark_text import fail, load_json, num_str, number, read_text, require_space, write_text

_FCSV_COLUMNS = "id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID".split(",")
_COORDINATE_SYSTEMS = {"LPS": "LPS", "RAS": "RAS", "1": "LPS", "0": "RAS"}
# Slicer gives a 2D image a 1 mm thick slice centred on z = 0; a point placed
# on it is within half of that of the plane.
_PLANE_TOLERANCE_MM = 0.5


def read_fcsv(path, image: Image | None = None) -> Landmarks:
    """Read a 3D Slicer fiducial .fcsv file: LPS world landmarks, or `image` indices.

    Files without a CoordinateSystem line come from Slicer before 4.11, which
    always wrote RAS. Empty coordinates mean a missing point.
    """
    text = read_text(path)
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
                    raise fail(path, f"line {line_no}", f"unknown CoordinateSystem {value!r}")
                system = _COORDINATE_SYSTEMS[value.upper()]
            elif key == "columns":
                columns = [c.strip() for c in value.split(",")]
            continue
        record = dict(zip(columns, row))
        missing = [c for c in ("x", "y", "z") if c not in record]
        if missing:
            raise fail(path, f"line {line_no}", f"no {missing} field ({len(row)} fields)")
        xyz = [number(record[c], path, f"line {line_no}, field {c!r}") for c in ("x", "y", "z")]
        label = record.get("label", "").strip() or f"landmark_{len(names) + 1}"
        if label in names:
            raise fail(path, f"line {line_no}", f"label {label!r} appears twice")
        names.append(label)
        points.append(xyz)
    if not names:
        raise fail(path, "", "no control points")
    return _from_slicer(names, points, system, image, path)


def _from_slicer(names, points, system, image, path) -> Landmarks:
    """The file's points as LPS world landmarks, or in `image`'s index space."""
    arr = np.array(points, dtype=np.float64).reshape(len(names), 3)
    if system == "RAS":
        arr[:, :2] *= -1.0
    try:
        landmarks = Landmarks(names, arr, "world")
    except ConfigError as e:
        raise LandmarkFileError(f"{path}: {e}") from None
    if image is None:
        return landmarks
    if image.ndim == 2:
        off = landmarks.present & (np.abs(arr[:, 2]) > _PLANE_TOLERANCE_MM)
        if np.any(off):
            i = int(np.argmax(off))
            raise LandmarkFileError(
                f"{path}: landmark {names[i]!r} lies at z = {float(arr[i, 2])!r} mm, off the plane z = 0 "
                f"of the 2D image (more than {_PLANE_TOLERANCE_MM} mm)"
            )
        landmarks = Landmarks(names, arr[:, :2], "world")
    return landmarks.to_index(image)


def _to_slicer(landmarks: Landmarks, image: Image | None, fmt: str, path) -> Landmarks:
    """3D LPS world landmarks to write, converted with `image`'s geometry if given."""
    if image is not None:
        landmarks = landmarks.to_world(image)
    require_space(landmarks, "world", fmt, path)
    if landmarks.ndim == 2 and image is not None:
        z = np.where(landmarks.present, 0.0, np.nan)
        landmarks = Landmarks(landmarks.names, np.column_stack([landmarks.points, z]), "world")
    if landmarks.ndim != 3:
        raise ConfigError(
            f"{path}: Slicer markups hold 3D points, got {landmarks.ndim}D; "
            "pass the 2D image as image= to place them in its plane"
        )
    return landmarks


def write_fcsv(path, landmarks: Landmarks, image: Image | None = None) -> None:
    """Write landmarks as a Slicer 4.11+ .fcsv in LPS (world, or index with `image`).

    The format has no notion of a missing point (Slicer would read an empty
    coordinate as 0), so missing landmarks are left out; `Landmarks.reindex`
    restores them after reading.
    """
    landmarks = _to_slicer(landmarks, image, "fcsv", path)
    out = io.StringIO()
    out.write("# Markups fiducial file version = 4.11\n")
    out.write("# CoordinateSystem = LPS\n")
    out.write("# columns = " + ",".join(_FCSV_COLUMNS) + "\n")
    writer = csv.writer(out, lineterminator="\n")
    for i, (name, point) in enumerate(zip(landmarks.names, landmarks.points), start=1):
        if not np.all(np.isfinite(point)):
            continue
        writer.writerow(
            [str(i)] + [num_str(v) for v in point] + ["0", "0", "0", "1", "1", "1", "0", name, "", ""]
        )
    write_text(path, out.getvalue())


_MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
    "Resources/Schema/markups-schema-v1.0.3.json#"
)


def read_mrk_json(path, image: Image | None = None) -> Landmarks:
    """Read the first markups node of a Slicer .mrk.json: LPS world landmarks, or `image` indices."""
    doc = load_json(path)
    markups = doc.get("markups") if isinstance(doc, dict) else None
    if not isinstance(markups, list) or not markups or not isinstance(markups[0], dict):
        raise fail(path, "field 'markups'", "expected a non-empty list of markups objects")
    node = markups[0]
    system = str(node.get("coordinateSystem", "LPS")).upper()
    if system not in _COORDINATE_SYSTEMS:
        raise fail(path, "field 'markups[0].coordinateSystem'", f"unknown value {system!r}")
    control = node.get("controlPoints", [])
    if not isinstance(control, list):
        raise fail(path, "field 'markups[0].controlPoints'", "expected a list")
    names, points = [], []
    for i, cp in enumerate(control):
        field = f"markups[0].controlPoints[{i}]"
        where = f"field '{field}'"
        if not isinstance(cp, dict):
            raise fail(path, where, f"expected an object, got {cp!r}")
        label = str(cp.get("label") or f"landmark_{i + 1}")
        if label in names:
            raise fail(path, where, f"label {label!r} appears twice")
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
                raise fail(path, f"field '{field}.position'", f"expected 3 finite numbers, got {pos!r}")
            xyz = [float(v) for v in pos]
        names.append(label)
        points.append(xyz)
    if not names:
        raise fail(path, "field 'markups[0].controlPoints'", "no control points")
    return _from_slicer(names, points, _COORDINATE_SYSTEMS[system], image, path)


def write_mrk_json(path, landmarks: Landmarks, image: Image | None = None) -> None:
    """Write landmarks as a Slicer markups fiducial .mrk.json in LPS (world, or index with `image`).

    Missing landmarks keep their place with positionStatus 'missing'.
    """
    landmarks = _to_slicer(landmarks, image, "mrk.json", path)
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
    write_text(path, json.dumps(doc, indent=4) + "\n")

