"""What every landmark reader shares: missing, binary and invalid JSON files are named errors."""

import pytest

from lmk_tf.errors import LandmarkFileError
from lmk_tf.io.landmarks import read_landmark_table, read_landmarks


def test_invalid_json_names_the_line(tmp_path):
    (tmp_path / "broken.json").write_text('{\n  "space": "index",\n  oops\n}')
    with pytest.raises(LandmarkFileError, match=r"broken\.json: line 3: invalid JSON"):
        read_landmarks(tmp_path / "broken.json")


def test_missing_landmark_file(tmp_path):
    with pytest.raises(LandmarkFileError, match=r"gone\.fcsv: no such file"):
        read_landmarks(tmp_path / "gone.fcsv")


def test_binary_file_is_not_a_landmark_file(tmp_path):
    (tmp_path / "x.csv").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(LandmarkFileError, match=r"x\.csv: not a text file"):
        read_landmark_table(tmp_path / "x.csv")
