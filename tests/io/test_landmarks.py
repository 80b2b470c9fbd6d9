"""Landmarks: spaces, validation, and every file format both ways."""

import json

import numpy as np
import pytest

from lmk_tf.errors import ConfigError, LandmarkFileError
from lmk_tf.image import Image
from lmk_tf.io.landmarks import (
    Landmarks,
    detect_landmark_format,
    read_isbi_txt,
    read_landmark_table,
    read_landmarks,
    write_landmark_table,
    write_landmarks,
)

NAN = np.nan


def _oblique_image():
    c, s = np.cos(0.3), np.sin(0.3)
    direction = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return Image(np.zeros((10, 20, 30), np.int16), (2.0, 0.5, 0.7), (10.0, -20.0, 5.0), direction)


def _world3d():
    return Landmarks(["a", "b", "c"], [[1.5, -2.25, 3.0], [NAN, NAN, NAN], [-0.1, 0.2, 1e3]], "world")


# ----------------------------------------------------------------------------- the type


def test_present_mask_and_missing_rows():
    lm = Landmarks(["a", "b"], [[1.0, 2.0], [NAN, NAN]])
    assert lm.present.tolist() == [True, False]
    assert lm.ndim == 2 and len(lm) == 2
    assert lm.points.dtype == np.float64


@pytest.mark.parametrize(
    "names,points,space,match",
    [
        (["a"], [[1.0, NAN]], "index", "some but not all"),
        (["a", "a"], [[1.0, 2.0], [3.0, 4.0]], "index", "repeated"),
        (["a"], [[1.0, 2.0], [3.0, 4.0]], "index", "1 landmark names for 2 points"),
        (["a"], [[1.0, 2.0, 3.0, 4.0]], "index", r"shape \[L, 2\]"),
        (["a"], [[1.0, 2.0]], "pixels", "'pixels'"),
    ],
)
def test_invalid_landmarks_are_refused(names, points, space, match):
    with pytest.raises(ConfigError, match=match):
        Landmarks(names, points, space)


def test_index_world_round_trip_on_an_oblique_image():
    image = _oblique_image()
    lm = Landmarks(["p", "q", "gone"], [[1.0, 2.5, 3.25], [9.0, 0.0, 29.0], [NAN] * 3])
    world = lm.to_world(image)
    assert world.space == "world"
    np.testing.assert_allclose(world.points[0], image.index_to_world([1.0, 2.5, 3.25]))
    assert not world.present[2]
    back = world.to_index(image)
    np.testing.assert_allclose(back.points[:2], lm.points[:2], atol=1e-12)
    assert np.all(np.isnan(back.points[2]))


def test_dimension_mismatch_with_the_image():
    with pytest.raises(ConfigError, match="2D landmarks do not fit a 3D image"):
        Landmarks(["a"], [[1.0, 2.0]]).to_world(_oblique_image())


def test_reindex_orders_and_fills_missing():
    lm = Landmarks(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    out = lm.reindex(["b", "z", "a"])
    assert out.names == ["b", "z", "a"]
    np.testing.assert_array_equal(out.points[[0, 2]], [[3.0, 4.0], [1.0, 2.0]])
    assert out.present.tolist() == [True, False, True]
    np.testing.assert_array_equal(lm.position("b"), [3.0, 4.0])


# ----------------------------------------------------------------------------- ISBI csv

ISBI_CSV = (
    "image,sella_x,sella_y,nasion_x,nasion_y\n"
    "001.jpg,835.0,996.0,1473.0,1029.0\n"
    "002.jpg,810.5,1052.0,,\n"
)


def test_isbi_table_swaps_x_y_into_row_col(tmp_path):
    (tmp_path / "senior.csv").write_text(ISBI_CSV)
    table = read_landmark_table(tmp_path / "senior.csv")
    assert list(table) == ["001.jpg", "002.jpg"]
    first = table["001.jpg"]
    assert first.names == ["sella", "nasion"]
    assert first.space == "index"
    np.testing.assert_array_equal(first.points, [[996.0, 835.0], [1029.0, 1473.0]])  # [row, col]
    assert table["002.jpg"].present.tolist() == [True, False]


def test_isbi_table_round_trip(tmp_path):
    (tmp_path / "in.csv").write_text(ISBI_CSV)
    table = read_landmark_table(tmp_path / "in.csv")
    write_landmark_table(tmp_path / "out.csv", table)
    again = read_landmark_table(tmp_path / "out.csv")
    assert list(again) == list(table)
    for key in table:
        np.testing.assert_array_equal(again[key].points, table[key].points)
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == ISBI_CSV.splitlines()[0]


def test_3d_table_round_trip(tmp_path):
    table = {"ct1": Landmarks(["apex"], [[3.0, 2.0, 1.0]]), "ct2": Landmarks(["apex"], [[NAN] * 3])}
    write_landmark_table(tmp_path / "t.csv", table)
    assert (tmp_path / "t.csv").read_text().splitlines()[:2] == ["image,apex_x,apex_y,apex_z", "ct1,1.0,2.0,3.0"]
    again = read_landmark_table(tmp_path / "t.csv")
    np.testing.assert_array_equal(again["ct1"].points, [[3.0, 2.0, 1.0]])
    assert not again["ct2"].present[0]


def test_one_row_table_through_read_landmarks(tmp_path):
    (tmp_path / "one.csv").write_text("image,a_x,a_y\nx.png,1,2\n")
    np.testing.assert_array_equal(read_landmarks(tmp_path / "one.csv").points, [[2.0, 1.0]])
    (tmp_path / "two.csv").write_text(ISBI_CSV)
    with pytest.raises(LandmarkFileError, match="holds 2 images"):
        read_landmarks(tmp_path / "two.csv")


@pytest.mark.parametrize(
    "text,match",
    [
        ("", r"line 1: empty file"),
        ("img,a_x,a_y\n", r"line 1: first column must be 'image', got 'img'"),
        ("image,a_x,b_y\n", r"line 1: columns \['a_x', 'b_y'\] should be"),
        ("image,a_x,a_y,b_x\n", r"line 1: 3 coordinate columns"),
        ("image,a_x,a_y\n1.jpg,1,2\n2.jpg,3\n", r"line 3: 2 fields, the header has 3"),
        ("image,a_x,a_y\n1.jpg,1,two\n", r"line 2, field 'a_y': expected a number, got 'two'"),
        ("image,a_x,a_y\n1.jpg,1,\n", r"line 2: landmark 'a' has only some coordinates"),
        ("image,a_x,a_y\n1.jpg,1,2\n1.jpg,1,2\n", r"line 3: image '1.jpg' appears twice"),
    ],
)
def test_bad_tables_name_line_and_field(tmp_path, text, match):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(LandmarkFileError, match=r"bad\.csv: " + match):
        read_landmark_table(tmp_path / "bad.csv")


def test_table_writer_needs_one_landmark_set(tmp_path):
    table = {"a": Landmarks(["x"], [[1.0, 2.0]]), "b": Landmarks(["y"], [[1.0, 2.0]])}
    with pytest.raises(ConfigError, match="needs the same set"):
        write_landmark_table(tmp_path / "t.csv", table)


# ----------------------------------------------------------------------------- ISBI txt


def test_isbi_txt_ignores_the_trailing_class_lines(tmp_path):
    (tmp_path / "001.txt").write_text("835,996\n1473,1029\n1289,1279\n1\n3\n2\n")
    lm = read_landmarks(tmp_path / "001.txt")
    assert lm.names == ["landmark_1", "landmark_2", "landmark_3"]
    np.testing.assert_array_equal(lm.points[0], [996.0, 835.0])


def test_isbi_txt_with_names_takes_that_many_lines(tmp_path):
    (tmp_path / "p.txt").write_text("1,2\n3,4\n5,6\n")
    lm = read_isbi_txt(tmp_path / "p.txt", names=["s", "n"])
    assert lm.names == ["s", "n"]
    assert lm.points.shape == (2, 2)
    with pytest.raises(LandmarkFileError, match=r"p\.txt: line 3: 3 points, expected 4"):
        read_isbi_txt(tmp_path / "p.txt", names=["a", "b", "c", "d"])


def test_isbi_txt_round_trip(tmp_path):
    lm = Landmarks(["a", "b", "c"], [[10.25, 20.5], [NAN, NAN], [0.0, 1e-3]])
    write_landmarks(tmp_path / "w.txt", lm)
    back = read_isbi_txt(tmp_path / "w.txt", names=lm.names)
    np.testing.assert_array_equal(back.points, lm.points)


def test_bad_isbi_txt(tmp_path):
    (tmp_path / "b.txt").write_text("1,2\n3;4\n")
    with pytest.raises(LandmarkFileError, match=r"b\.txt: line 2: expected 'x,y', got '3;4'"):
        read_isbi_txt(tmp_path / "b.txt", names=["a", "b"])
    (tmp_path / "c.txt").write_text("x,2\n")
    with pytest.raises(LandmarkFileError, match=r"c\.txt: line 1: expected a number, got 'x'"):
        read_landmarks(tmp_path / "c.txt")


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


def test_fcsv_round_trip_leaves_out_missing_points(tmp_path):
    lm = _world3d()
    write_landmarks(tmp_path / "w.fcsv", lm)
    text = (tmp_path / "w.fcsv").read_text()
    assert "# CoordinateSystem = LPS" in text
    back = read_landmarks(tmp_path / "w.fcsv")
    assert back.names == ["a", "c"]
    np.testing.assert_array_equal(back.reindex(lm.names).points[[0, 2]], lm.points[[0, 2]])


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


def test_slicer_markups_saved_as_plain_json_are_recognised(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(_mrk("LPS", [{"label": "A", "position": [1, 2, 3]}])))
    assert detect_landmark_format(tmp_path / "m.json") == "mrk_json"
    assert read_landmarks(tmp_path / "m.json").names == ["A"]


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


def test_invalid_json_names_the_line(tmp_path):
    (tmp_path / "broken.json").write_text('{\n  "space": "index",\n  oops\n}')
    with pytest.raises(LandmarkFileError, match=r"broken\.json: line 3: invalid JSON"):
        read_landmarks(tmp_path / "broken.json")


# ----------------------------------------------------------------------------- plain JSON


@pytest.mark.parametrize(
    "lm",
    [
        Landmarks(["a", "b"], [[1.25, 2.0], [NAN, NAN]], "index"),
        Landmarks(["x", "y", "z"], [[1.0, 2.0, 3.0], [NAN] * 3, [-1e-9, 0.0, 7.5]], "world"),
    ],
)
def test_plain_json_round_trip(tmp_path, lm):
    write_landmarks(tmp_path / "l.json", lm)
    doc = json.loads((tmp_path / "l.json").read_text())
    assert doc["space"] == lm.space and doc["ndim"] == lm.ndim
    assert doc["landmarks"][1]["position"] is None
    back = read_landmarks(tmp_path / "l.json")
    assert back.names == lm.names and back.space == lm.space
    np.testing.assert_array_equal(back.points, lm.points)


@pytest.mark.parametrize(
    "doc,match",
    [
        ([], "top level: expected an object"),
        ({"space": "mm", "ndim": 2, "landmarks": []}, "field 'space'"),
        ({"space": "index", "ndim": 4, "landmarks": []}, "field 'ndim'"),
        ({"space": "index", "ndim": 2, "landmarks": [{"position": [1, 2]}]},
         r"field 'landmarks\[0\]': expected an object with a non-empty 'name'"),
        ({"space": "index", "ndim": 2, "landmarks": [{"name": "a", "position": [1, 2, 3]}]},
         r"field 'landmarks\[0\].position': expected 2 finite numbers or null, got \[1, 2, 3\]"),
        ({"space": "index", "ndim": 2, "landmarks": [{"name": "a", "position": [1, True]}]},
         r"field 'landmarks\[0\].position': .*True"),
    ],
)
def test_bad_plain_json(tmp_path, doc, match):
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(LandmarkFileError, match=r"bad\.json: " + match):
        read_landmarks(tmp_path / "bad.json")


# ----------------------------------------------------------------------------- dispatch


def test_fmt_overrides_the_suffix(tmp_path):
    lm = Landmarks(["a"], [[1.0, 2.0]])
    write_landmarks(tmp_path / "points.dat", lm, fmt="json")
    assert read_landmarks(tmp_path / "points.dat", fmt="json").names == ["a"]


def test_unknown_suffix_and_fmt(tmp_path):
    with pytest.raises(LandmarkFileError, match=r"points\.dat: cannot tell the landmark format"):
        read_landmarks(tmp_path / "points.dat")
    with pytest.raises(ConfigError, match="unknown landmark format 'yaml'"):
        read_landmarks(tmp_path / "points.dat", fmt="yaml")


def test_missing_landmark_file(tmp_path):
    with pytest.raises(LandmarkFileError, match=r"gone\.fcsv: no such file"):
        read_landmarks(tmp_path / "gone.fcsv")


def test_binary_file_is_not_a_landmark_file(tmp_path):
    (tmp_path / "x.csv").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(LandmarkFileError, match=r"x\.csv: not a text file"):
        read_landmark_table(tmp_path / "x.csv")


def test_csv_writer_points_to_the_table_writer(tmp_path):
    with pytest.raises(ConfigError, match="write_landmark_table"):
        write_landmarks(tmp_path / "one.csv", Landmarks(["a"], [[1.0, 2.0]]))
