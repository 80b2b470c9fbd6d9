"""Format detection and the read/write dispatch."""

import json

import numpy as np
import pytest

from lmk_tf.errors import ConfigError, LandmarkFileError
from lmk_tf.image import Image
from lmk_tf.io.landmarks import Landmarks, detect_landmark_format, read_landmarks, write_landmarks

NAN = np.nan
TWO_IMAGES = (
    "image,sella_x,sella_y,nasion_x,nasion_y\n"
    "001.jpg,835.0,996.0,1473.0,1029.0\n"
    "002.jpg,810.5,1052.0,,\n"
)


def test_one_row_table_through_read_landmarks(tmp_path):
    (tmp_path / "one.csv").write_text("image,a_x,a_y\nx.png,1,2\n")
    np.testing.assert_array_equal(read_landmarks(tmp_path / "one.csv").points, [[2.0, 1.0]])
    (tmp_path / "two.csv").write_text(TWO_IMAGES)
    with pytest.raises(LandmarkFileError, match="holds 2 images"):
        read_landmarks(tmp_path / "two.csv")


def test_slicer_markups_saved_as_plain_json_are_recognised(tmp_path):
    node = {"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": [{"label": "A", "position": [1, 2, 3]}]}
    (tmp_path / "m.json").write_text(json.dumps({"@schema": "x", "markups": [node]}))
    assert detect_landmark_format(tmp_path / "m.json") == "mrk_json"
    assert read_landmarks(tmp_path / "m.json").names == ["A"]


def test_fmt_overrides_the_suffix(tmp_path):
    lm = Landmarks(["a"], [[1.0, 2.0]])
    write_landmarks(tmp_path / "points.dat", lm, fmt="json")
    assert read_landmarks(tmp_path / "points.dat", fmt="json").names == ["a"]


def test_unknown_suffix_and_fmt(tmp_path):
    with pytest.raises(LandmarkFileError, match=r"points\.dat: cannot tell the landmark format"):
        read_landmarks(tmp_path / "points.dat")
    with pytest.raises(ConfigError, match="unknown landmark format 'yaml'"):
        read_landmarks(tmp_path / "points.dat", fmt="yaml")


def test_csv_writer_points_to_the_table_writer(tmp_path):
    with pytest.raises(ConfigError, match="write_landmark_table"):
        write_landmarks(tmp_path / "one.csv", Landmarks(["a"], [[1.0, 2.0]]))


def test_with_the_image_reading_gives_index_space_and_writing_the_format_space(tmp_path):
    image = Image(np.zeros((40, 60), np.uint8), (0.5, 0.25), (10.0, 20.0))
    world = Landmarks(["a", "b"], [[12.5, 21.0], [NAN, NAN]], "world")
    # ISBI txt holds index points: world points are converted on writing.
    write_landmarks(tmp_path / "p.txt", world, image=image)
    txt = read_landmarks(tmp_path / "p.txt")
    np.testing.assert_allclose(txt.points[0], [2.0, 10.0])
    # JSON keeps the space it is given; reading with the image gives indices.
    write_landmarks(tmp_path / "p.json", world, image=image)
    assert read_landmarks(tmp_path / "p.json").space == "world"
    index = read_landmarks(tmp_path / "p.json", image=image)
    assert index.space == "index"
    np.testing.assert_allclose(index.points[0], [2.0, 10.0])
    assert index.present.tolist() == [True, False]
    with pytest.raises(ConfigError, match="2D landmarks do not fit a 3D image"):
        read_landmarks(tmp_path / "p.json", image=Image(np.zeros((2, 2, 2)), (1.0, 1.0, 1.0)))
