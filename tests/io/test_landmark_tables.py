"""ISBI 2015 tables and txt files, and the plain JSON, both ways and their errors."""

import json

import numpy as np
import pytest

from lmk_tf.errors import ConfigError, LandmarkFileError
from lmk_tf.io.landmarks import (
    Landmarks,
    read_isbi_txt,
    read_landmark_table,
    read_landmarks,
    write_landmark_table,
    write_landmarks,
)

NAN = np.nan


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
