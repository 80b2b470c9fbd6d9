"""3D Slicer .fcsv and .mrk.json: coordinate systems, missing points, errors, image geometry."""

import csv
import json

import numpy as np
import pytest

from lmk_tf.errors import ConfigError, LandmarkFileError
from lmk_tf.image import Image
from lmk_tf.io.landmarks import Landmarks, read_landmarks, write_landmarks
from lmk_tf.io.slicer_markups import write_fcsv, write_mrk_json

NAN = np.nan


def _world3d():
    return Landmarks(["a", "b", "c"], [[1.5, -2.25, 3.0], [NAN, NAN, NAN], [-0.1, 0.2, 1e3]], "world")


# ----------------------------------------------------------------------------- Slicer fcsv

FCSV_COLUMNS = "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
FCSV_HEADER = "# Markups fiducial file version = 4.11\n# CoordinateSystem = {cs}\n" + FCSV_COLUMNS


@pytest.mark.parametrize("cs,sign", [("LPS", 1), ("1", 1), ("RAS", -1), ("0", -1)])
def test_fcsv_coordinate_systems_become_lps(tmp_path, cs, sign):
    text = FCSV_HEADER.format(cs=cs) + 'vtkMRMLMarkupsFiducialNode_0,10,-20,30,0,0,0,1,1,1,0,"sella, turcica",,\n'
    (tmp_path / "f.fcsv").write_text(text)
    lm = read_landmarks(tmp_path / "f.fcsv")
    assert lm.space == "world"
    assert lm.names == ["sella, turcica"]
    np.testing.assert_array_equal(lm.points[0], [10 * sign, -20 * sign, 30])


def test_old_fcsv_without_coordinate_system_is_ras(tmp_path):
    (tmp_path / "old.fcsv").write_text(
        "# Markups fiducial file version = 4.4\n" + FCSV_COLUMNS
        + "id1,1,2,3,0,0,0,1,1,1,0,F-1,,\n"
    )
    np.testing.assert_array_equal(read_landmarks(tmp_path / "old.fcsv").points[0], [-1, -2, 3])


def test_fcsv_round_trip_flags_missing_points(tmp_path):
    lm = _world3d()
    write_landmarks(tmp_path / "w.fcsv", lm)
    text = (tmp_path / "w.fcsv").read_text()
    assert "# CoordinateSystem = LPS" in text
    back = read_landmarks(tmp_path / "w.fcsv")
    assert back.names == lm.names
    np.testing.assert_array_equal(back.points, lm.points)


def test_fcsv_errors(tmp_path):
    (tmp_path / "cs.fcsv").write_text(FCSV_HEADER.format(cs="IJK"))
    with pytest.raises(LandmarkFileError, match=r"cs\.fcsv: line 2: unknown CoordinateSystem 'IJK'"):
        read_landmarks(tmp_path / "cs.fcsv")
    (tmp_path / "num.fcsv").write_text(FCSV_HEADER.format(cs="LPS") + "id,1,abc,3,0,0,0,1,1,1,0,L,,\n")
    with pytest.raises(LandmarkFileError, match=r"num\.fcsv: line 4, field 'y': expected a number"):
        read_landmarks(tmp_path / "num.fcsv")
    (tmp_path / "none.fcsv").write_text(FCSV_HEADER.format(cs="LPS"))
    with pytest.raises(LandmarkFileError, match=r"none\.fcsv: no control points"):
        read_landmarks(tmp_path / "none.fcsv")


def test_slicer_writers_need_3d_world_points(tmp_path):
    with pytest.raises(ConfigError, match=r"to_world"):
        write_landmarks(tmp_path / "i.fcsv", Landmarks(["a"], [[1.0, 2.0, 3.0]], "index"))
    with pytest.raises(ConfigError, match="3D points, got 2D"):
        write_landmarks(tmp_path / "i.mrk.json", Landmarks(["a"], [[1.0, 2.0]], "world"))


# ----------------------------------------------------------------------------- Slicer mrk.json


def _mrk(cs, points):
    return {"@schema": "x", "markups": [{"type": "Fiducial", "coordinateSystem": cs, "controlPoints": points}]}


def test_mrk_json_ras_and_missing(tmp_path):
    doc = _mrk("RAS", [
        {"label": "A", "position": [1.0, 2.0, 3.0], "positionStatus": "defined"},
        {"label": "B", "position": [0.0, 0.0, 0.0], "positionStatus": "missing"},
    ])
    (tmp_path / "m.mrk.json").write_text(json.dumps(doc))
    lm = read_landmarks(tmp_path / "m.mrk.json")
    assert lm.names == ["A", "B"]
    np.testing.assert_array_equal(lm.points[0], [-1.0, -2.0, 3.0])
    assert lm.present.tolist() == [True, False]


def test_mrk_json_round_trip_keeps_missing(tmp_path):
    lm = _world3d()
    write_landmarks(tmp_path / "w.mrk.json", lm)
    doc = json.loads((tmp_path / "w.mrk.json").read_text())
    node = doc["markups"][0]
    assert node["coordinateSystem"] == "LPS" and node["type"] == "Fiducial"
    assert [p["positionStatus"] for p in node["controlPoints"]] == ["defined", "missing", "defined"]
    back = read_landmarks(tmp_path / "w.mrk.json")
    assert back.names == lm.names
    np.testing.assert_array_equal(back.points, lm.points)


@pytest.mark.parametrize(
    "doc,match",
    [
        ({"markups": []}, r"field 'markups'"),
        (_mrk("XYZ", []), r"field 'markups\[0\].coordinateSystem'"),
        (_mrk("LPS", [{"label": "A", "position": [1, 2]}]), r"controlPoints\[0\].position': expected 3 finite"),
        (_mrk("LPS", [{"label": "A", "position": [1, 2, 3]}, {"label": "A", "position": [1, 2, 3]}]), "appears twice"),
    ],
)
def test_bad_mrk_json_names_the_field(tmp_path, doc, match):
    (tmp_path / "bad.mrk.json").write_text(json.dumps(doc))
    with pytest.raises(LandmarkFileError, match=r"bad\.mrk\.json: .*" + match):
        read_landmarks(tmp_path / "bad.mrk.json")


# ----------------------------------------------------------------------------- with the image geometry


def _oblique_volume():
    c, s = np.cos(0.4), np.sin(0.4)
    direction = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return Image(np.zeros((8, 16, 12), np.int16), (2.5, 0.8, 0.6), (-30.0, 12.0, 4.5), direction)


@pytest.mark.parametrize("suffix", ["fcsv", "mrk.json"])
def test_index_landmarks_written_with_the_image_are_world_points(tmp_path, suffix):
    image = _oblique_volume()
    lm = Landmarks(["a", "gone", "b"], [[1.0, 2.5, 3.25], [NAN] * 3, [7.0, 15.0, 0.0]], "index")
    path = tmp_path / f"w.{suffix}"
    write_landmarks(path, lm, image=image)
    world = read_landmarks(path).reindex(lm.names)
    assert world.space == "world"
    np.testing.assert_allclose(world.points[[0, 2]], image.index_to_world(lm.points[[0, 2]]), atol=1e-12)
    back = read_landmarks(path, image=image).reindex(lm.names)
    assert back.space == "index"
    np.testing.assert_allclose(back.points[[0, 2]], lm.points[[0, 2]], atol=1e-12)
    assert back.present.tolist() == [True, False, True]


@pytest.mark.parametrize("suffix", ["fcsv", "mrk.json"])
def test_2d_landmarks_lie_in_the_plane_z_0(tmp_path, suffix):
    image = Image(np.zeros((40, 60), np.uint8), (0.1, 0.1), (5.0, -2.0))
    lm = Landmarks(["sella", "gone"], [[10.5, 20.25], [NAN, NAN]], "index")
    path = tmp_path / f"ceph.{suffix}"
    write_landmarks(path, lm, image=image)
    world = read_landmarks(path)
    np.testing.assert_allclose(world.position("sella"), [5.0 + 2.025, -2.0 + 1.05, 0.0], atol=1e-12)
    back = read_landmarks(path, image=image).reindex(lm.names)
    np.testing.assert_allclose(back.points[0], lm.points[0], atol=1e-9)
    assert back.present.tolist() == [True, False]


def test_points_off_the_plane_of_a_2d_image_are_refused(tmp_path):
    doc = _mrk("LPS", [{"label": "A", "position": [1, 2, 0.2]}, {"label": "B", "position": [1, 2, 3.0]}])
    (tmp_path / "off.mrk.json").write_text(json.dumps(doc))
    image = Image(np.zeros((40, 60), np.uint8), (1.0, 1.0))
    with pytest.raises(LandmarkFileError, match=r"off\.mrk\.json: landmark 'B' lies at z = 3\.0 mm, off the plane"):
        read_landmarks(tmp_path / "off.mrk.json", image=image)


def test_2d_world_points_without_the_image_point_to_image_argument(tmp_path):
    with pytest.raises(ConfigError, match="pass the 2D image as image="):
        write_landmarks(tmp_path / "w.fcsv", Landmarks(["a"], [[1.0, 2.0]], "world"))


# ----------------------------------------------------------------------------- exactly as Slicer 5 writes them
# Field names, order and values follow Slicer's writers (vtkMRMLMarkupsJsonStorageNode,
# vtkMRMLMarkupsFiducialStorageNode) and markups-schema-v1.0.3.json.

MRK_NODE_KEYS = ["type", "coordinateSystem", "coordinateUnits", "locked", "fixedNumberOfControlPoints",
                 "labelFormat", "lastUsedControlPointNumber", "controlPoints", "measurements"]
MRK_POINT_KEYS = ["id", "label", "description", "associatedNodeID", "position", "orientation", "selected",
                  "locked", "visibility", "positionStatus"]


@pytest.mark.parametrize("cs", ["LPS", "RAS"])
def test_mrk_json_has_slicers_fields_and_types(tmp_path, cs):
    lm = _world3d()
    path = tmp_path / "s.mrk.json"
    write_mrk_json(path, lm, coordinate_system=cs, descriptions=["x", "y", "z"])
    doc = json.loads(path.read_text())
    assert list(doc) == ["@schema", "markups"]
    assert doc["@schema"].endswith("/Markups/Resources/Schema/markups-schema-v1.0.3.json#")
    (node,) = doc["markups"]
    assert list(node) == MRK_NODE_KEYS
    assert (node["type"], node["coordinateSystem"], node["coordinateUnits"]) == ("Fiducial", cs, "mm")
    assert node["locked"] is False and node["fixedNumberOfControlPoints"] is False
    assert node["labelFormat"] == "%N-%d" and node["lastUsedControlPointNumber"] == 3
    assert node["measurements"] == []
    sign = np.array([-1.0, -1.0, 1.0]) if cs == "RAS" else np.ones(3)
    for i, (cp, name) in enumerate(zip(node["controlPoints"], lm.names)):
        assert list(cp) == MRK_POINT_KEYS
        assert (cp["id"], cp["label"], cp["description"], cp["associatedNodeID"]) == (str(i + 1), name, "xyz"[i], "")
        assert all(isinstance(cp[k], bool) for k in ("selected", "locked", "visibility"))
        assert len(cp["orientation"]) == 9 and all(isinstance(v, float) for v in cp["orientation"])
        if lm.present[i]:
            assert cp["positionStatus"] == "defined"
            assert all(isinstance(v, float) for v in cp["position"])
            np.testing.assert_array_equal(cp["position"], lm.points[i] * sign)
        else:  # what Slicer writes for a point without a position
            assert (cp["positionStatus"], cp["position"]) == ("missing", "")
    np.testing.assert_array_equal(read_landmarks(path).points, lm.points)


def test_fcsv_has_slicers_header_and_sixteen_fields(tmp_path):
    path = tmp_path / "s.fcsv"
    write_fcsv(path, _world3d(), coordinate_system="RAS", descriptions=["first", "", "third, with comma"])
    lines = path.read_text().splitlines()
    assert lines[:3] == ["# Markups fiducial file version = 5.0", "# CoordinateSystem = RAS", FCSV_COLUMNS.strip()]
    rows = list(csv.reader(lines[3:]))
    assert [len(r) for r in rows] == [16, 16, 16]
    assert rows[0] == ["1", "-1.5", "2.25", "3.0", "0", "0", "0", "1", "1", "1", "0", "a", "first", "", "2", "0"]
    assert rows[1][1:4] == ["0", "0", "0"] and rows[1][14] == "3"  # missing
    assert rows[2][12] == "third, with comma"
    back = read_landmarks(path)
    np.testing.assert_array_equal(back.points, _world3d().points)


def _slicer_point(i, position, status, node=""):
    lps_identity = [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0]
    return {"id": str(i), "label": f"F-{i}", "description": "", "associatedNodeID": node, "position": position,
            "orientation": lps_identity, "selected": True, "locked": False, "visibility": True,
            "positionStatus": status}


def test_files_as_slicer_5_writes_them_are_read(tmp_path):
    # A point list saved by Slicer 5.6: display properties, a point whose
    # placement was skipped (missing, no position) and an unplaced one.
    points = [_slicer_point(1, [-12.5, 30.25, 4.0], "defined", "vtkMRMLScalarVolumeNode1"),
              _slicer_point(2, "", "missing"), _slicer_point(3, "", "undefined")]
    node = {"type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm", "locked": False,
            "fixedNumberOfControlPoints": False, "labelFormat": "%N-%d", "lastUsedControlPointNumber": 3,
            "controlPoints": points, "measurements": [],
            "display": {"visibility": True, "opacity": 1.0, "glyphType": "Sphere3D"}}
    doc = {"@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
                      "Resources/Schema/markups-schema-v1.0.3.json#", "markups": [node]}
    (tmp_path / "slicer.mrk.json").write_text(json.dumps(doc, indent=4))
    lm = read_landmarks(tmp_path / "slicer.mrk.json")
    assert lm.names == ["F-1", "F-2", "F-3"] and lm.present.tolist() == [True, False, False]
    np.testing.assert_array_equal(lm.points[0], [-12.5, 30.25, 4.0])
    (tmp_path / "slicer.fcsv").write_text(
        "# Markups fiducial file version = 5.6\n# CoordinateSystem = LPS\n" + FCSV_COLUMNS
        + "1,-12.5,30.25,4,0,0,0,1,1,1,0,F-1,,vtkMRMLScalarVolumeNode1,2,0\n"
        + "2,0,0,0,0,0,0,1,1,1,0,F-2,,,3,0\n")
    lm = read_landmarks(tmp_path / "slicer.fcsv")
    assert lm.present.tolist() == [True, False]
    np.testing.assert_array_equal(lm.points[0], [-12.5, 30.25, 4.0])


@pytest.mark.parametrize("suffix,text,match", [
    ("fcsv", FCSV_HEADER.format(cs="LPS") + "1,1,2,3,0,0,0,1,1,1,0,A,,,7,0\n", r"field 'positionStatus': expected 0-3"),
    ("mrk.json", json.dumps(_mrk("LPS", [{"label": "A", "position": [1, 2, 3], "positionStatus": "gone"}])),
     r"positionStatus': expected one of undefined, preview, defined, missing, got 'gone'"),
])
def test_unknown_position_status_is_named(tmp_path, suffix, text, match):
    (tmp_path / f"bad.{suffix}").write_text(text)
    with pytest.raises(LandmarkFileError, match=match):
        read_landmarks(tmp_path / f"bad.{suffix}")


def test_bad_writer_arguments(tmp_path):
    with pytest.raises(ConfigError, match="coordinate_system must be one of"):
        write_mrk_json(tmp_path / "x.mrk.json", _world3d(), coordinate_system="IJK")
    with pytest.raises(ConfigError, match="2 descriptions for 3 landmarks"):
        write_mrk_json(tmp_path / "x.mrk.json", _world3d(), descriptions=["a", "b"])
