"""3D Slicer markups files: the fiducial .fcsv and the markups .mrk.json.

Both hold 3D world points. Files may be in RAS; they are converted to LPS on
reading (negate x and y). Writers state the system they use (LPS unless
`coordinate_system='RAS'`) and write what Slicer 5 writes
(vtkMRMLMarkupsJsonStorageNode, vtkMRMLMarkupsFiducialStorageNode): a missing
landmark keeps its place as a control point with position status "missing"
(.mrk.json: no position; .fcsv: the 15th field, 3), which Slicer shows in the
point list but never places.

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
# Slicer 5 writes 16 fields per point but names only the first 14 in the
# "# columns" line; its reader takes the last two by position.
_FCSV_EXTRA = ("positionStatus", "autoCreated")
_COORDINATE_SYSTEMS = {"LPS": "LPS", "RAS": "RAS", "1": "LPS", "0": "RAS"}
WRITE_SYSTEMS = ("LPS", "RAS")
# vtkMRMLMarkupsNode's position status, as .fcsv numbers and .mrk.json names.
_STATUS_NAMES = ("undefined", "preview", "defined", "missing")
_DEFINED, _MISSING = 2, 3
# The version Slicer writes is its own; 5.0 is the first whose .fcsv has the
# position status field.
_FCSV_VERSION = "5.0"
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
        record = dict(zip(columns + [c for c in _FCSV_EXTRA if c not in columns], row))
        missing = [c for c in ("x", "y", "z") if c not in record]
        if missing:
            raise fail(path, f"line {line_no}", f"no {missing} field ({len(row)} fields)")
        xyz = [number(record[c], path, f"line {line_no}, field {c!r}") for c in ("x", "y", "z")]
        status = record.get("positionStatus", "").strip() or str(_DEFINED)
        if status not in ("0", "1", "2", "3"):
            raise fail(path, f"line {line_no}, field 'positionStatus'",
                       f"expected 0-3 (undefined, preview, defined, missing), got {status!r}")
        if int(status) != _DEFINED:
            xyz = [math.nan] * 3
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


def _to_slicer(landmarks: Landmarks, image: Image | None, fmt: str, path, coordinate_system: str,
               descriptions) -> tuple[Landmarks, list[str]]:
    """3D world landmarks in `coordinate_system` to write, and one description each.

    Index landmarks are converted with `image`'s geometry if given.
    """
    if coordinate_system not in WRITE_SYSTEMS:
        raise ConfigError(f"{path}: coordinate_system must be one of {WRITE_SYSTEMS}, got {coordinate_system!r}")
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
    descriptions = [""] * len(landmarks) if descriptions is None else [str(d) for d in descriptions]
    if len(descriptions) != len(landmarks):
        raise ConfigError(f"{path}: {len(descriptions)} descriptions for {len(landmarks)} landmarks")
    if coordinate_system == "RAS":
        points = landmarks.points.copy()
        points[:, :2] *= -1.0
        landmarks = Landmarks(landmarks.names, points, "world")
    return landmarks, descriptions


def write_fcsv(path, landmarks: Landmarks, image: Image | None = None, *, coordinate_system: str = "LPS",
               descriptions=None) -> None:
    """Write landmarks as Slicer 5 writes a .fcsv (world points, or index ones with `image`).

    Args:
      path: the file.
      landmarks: the points; missing ones get position status 3 ("missing")
        at 0, 0, 0, as Slicer stores a point that has no position.
      image: converts index landmarks to world mm with its geometry.
      coordinate_system: 'LPS' (Slicer's default since 4.11) or 'RAS'.
      descriptions: one text per landmark for the desc field (default empty).
    """
    landmarks, descriptions = _to_slicer(landmarks, image, "fcsv", path, coordinate_system, descriptions)
    out = io.StringIO()
    out.write(f"# Markups fiducial file version = {_FCSV_VERSION}\n")
    out.write(f"# CoordinateSystem = {coordinate_system}\n")
    out.write("# columns = " + ",".join(_FCSV_COLUMNS) + "\n")
    writer = csv.writer(out, lineterminator="\n")
    for i, (name, point, desc) in enumerate(zip(landmarks.names, landmarks.points, descriptions), start=1):
        defined = bool(np.all(np.isfinite(point)))
        xyz = [num_str(v) for v in point] if defined else ["0", "0", "0"]
        writer.writerow([str(i), *xyz, "0", "0", "0", "1", "1", "1", "0", name, desc, "",
                         str(_DEFINED if defined else _MISSING), "0"])
    write_text(path, out.getvalue())


_MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
    "Resources/Schema/markups-schema-v1.0.3.json#"
)
# A control point's identity orientation as Slicer writes it in each system
# (its RAS matrix with the first two rows negated for LPS).
_ORIENTATION = {"RAS": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                "LPS": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0]}


def read_mrk_json(path, image: Image | None = None) -> Landmarks:
    """Read the first markups node of a Slicer .mrk.json: LPS world landmarks, or `image` indices.

    A control point whose position status is not "defined" (undefined,
    preview, missing) is a missing landmark, with or without a position.
    """
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
        if status not in _STATUS_NAMES:
            raise fail(path, f"field '{field}.positionStatus'",
                       f"expected one of {', '.join(_STATUS_NAMES)}, got {status!r}")
        if status != "defined":
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


def write_mrk_json(path, landmarks: Landmarks, image: Image | None = None, *, coordinate_system: str = "LPS",
                   descriptions=None) -> None:
    """Write landmarks as Slicer 5 writes a point list .mrk.json (world, or index with `image`).

    One control point per landmark, labelled with its name. A missing
    landmark keeps its place with positionStatus "missing" and an empty
    position, exactly as Slicer writes a point that has none. Arguments as
    `write_fcsv`.
    """
    landmarks, descriptions = _to_slicer(landmarks, image, "mrk.json", path, coordinate_system, descriptions)
    control = []
    for i, (name, point, desc) in enumerate(zip(landmarks.names, landmarks.points, descriptions), start=1):
        defined = bool(np.all(np.isfinite(point)))
        control.append(
            {
                "id": str(i),
                "label": name,
                "description": desc,
                "associatedNodeID": "",
                "position": [float(v) for v in point] if defined else "",
                "orientation": list(_ORIENTATION[coordinate_system]),
                "selected": True,
                "locked": False,
                "visibility": True,
                "positionStatus": _STATUS_NAMES[_DEFINED if defined else _MISSING],
            }
        )
    doc = {
        "@schema": _MARKUPS_SCHEMA,
        "markups": [
            {
                "type": "Fiducial",
                "coordinateSystem": coordinate_system,
                "coordinateUnits": "mm",
                "locked": False,
                "fixedNumberOfControlPoints": False,
                "labelFormat": "%N-%d",
                "lastUsedControlPointNumber": len(control),
                "controlPoints": control,
                "measurements": [],
            }
        ],
    }
    write_text(path, json.dumps(doc, indent=4) + "\n")
