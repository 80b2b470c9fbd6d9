"""The answers of lmk-predict and lmk-client: text on stdout, or one file per image."""

import io
import json

import numpy as np
import pytest

from lmk_tf.errors import ConfigError
from lmk_tf.image import Image
from lmk_tf.io.answers import check_format, output_paths, result_landmarks, write_answers
from lmk_tf.io.landmarks import read_landmarks


def _oblique_volume():
    # Rotated about two axes, non-zero origin, anisotropic voxels.
    a, b = 0.5, -0.3
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return Image(np.zeros((6, 10, 8), np.int16), (2.0, 0.8, 0.7), (-40.0, 25.5, 110.0), rz @ rx)


def _result(image, file="case1.nii.gz"):
    index = np.array([[1.0, 2.5, 3.25], [4.0, 0.0, 7.0], [5.5, 9.0, 0.5]])
    present = [True, False, True]
    return {"file": file, "model": {"version": 1}, "shape": list(image.shape), "spacing": list(image.spacing),
            "landmarks": [{"name": n, "index": list(i), "mm": list(i * image.spacing),
                           "world": list(image.index_to_world(i)), "confidence": c, "present": p}
                          for n, i, c, p in zip(["nasion", "gone", "vertex"], index, [0.9, 0.1, 0.75], present)]}


def test_uncertainty_columns_are_the_served_contracts():
    from lmk_tf.export.contract import UNCERTAINTY_OUTPUTS
    from lmk_tf.io.answers import UNCERTAINTY_COLUMNS

    assert UNCERTAINTY_COLUMNS == UNCERTAINTY_OUTPUTS


def test_output_paths(tmp_path):
    files = ["/data/case1.nii.gz", "/data/series/case2/", "/data/case3.mha"]
    assert output_paths(files, "mrk.json", str(tmp_path)) == [
        str(tmp_path / "case1.mrk.json"), str(tmp_path / "case2.mrk.json"), str(tmp_path / "case3.mrk.json")]
    assert output_paths(files[:1], "fcsv", "out/new/") == ["out/new/case1.fcsv"]
    assert output_paths(files[:2], "fcsv", "out/pred_") == ["out/pred_case1.fcsv", "out/pred_case2.fcsv"]
    assert output_paths(files[:1], "mrk.json", "out/answer.mrk.json") == ["out/answer.mrk.json"]
    with pytest.raises(ConfigError, match="is one file but 2 images were given"):
        output_paths(files[:2], "mrk.json", "out/answer.mrk.json")
    with pytest.raises(ConfigError, match=r"/a/case1.nii.gz and /b/case1.mha would both be answered in"):
        output_paths(["/a/case1.nii.gz", "/b/case1.mha"], "json", "out/")


@pytest.mark.parametrize("fmt,output,cs,match", [
    ("mrk.json", None, "LPS", "--format=mrk.json writes one file per image; give --output"),
    ("json", None, "RAS", "--coordinate_system=RAS applies to mrk.json and fcsv"),
    ("xml", None, "LPS", "format must be one of json, csv, mrk.json, fcsv"),
    ("fcsv", "o/", "IJK", "coordinate system must be one of LPS, RAS"),
])
def test_format_output_and_system_that_do_not_go_together(fmt, output, cs, match):
    with pytest.raises(ConfigError, match=match):
        check_format(fmt, output, cs)


@pytest.mark.parametrize("fmt", ["mrk.json", "fcsv"])
@pytest.mark.parametrize("cs", ["LPS", "RAS"])
def test_slicer_answers_are_world_points_through_the_images_geometry(tmp_path, fmt, cs):
    image = _oblique_volume()
    result = _result(image)
    out = io.StringIO()
    (path,) = write_answers([result], [image], fmt, str(tmp_path) + "/", coordinate_system=cs, stdout=out)
    assert path == str(tmp_path / f"case1.{fmt}") and out.getvalue() == path + "\n"
    text = open(path).read()
    assert (f'"coordinateSystem": "{cs}"' if fmt == "mrk.json" else f"# CoordinateSystem = {cs}") in text
    world = read_landmarks(path)  # LPS, whatever the file states
    assert world.names == ["nasion", "gone", "vertex"] and world.present.tolist() == [True, False, True]
    want = np.array([lm["world"] for lm in result["landmarks"]])
    np.testing.assert_allclose(world.points[[0, 2]], want[[0, 2]], atol=1e-9)
    back = read_landmarks(path, image=image)
    np.testing.assert_allclose(back.points[[0, 2]], [result["landmarks"][i]["index"] for i in (0, 2)], atol=1e-9)
    assert "confidence 0.100 (reported absent)" in text and "confidence 0.900" in text


def test_json_and_csv_per_image_files_or_stdout(tmp_path):
    image = _oblique_volume()
    results = [_result(image, "a/case1.nii.gz"), _result(image, "b/case2.nii.gz")]
    out = io.StringIO()
    assert write_answers(results, [image, image], "json", stdout=out) == []
    assert json.loads(out.getvalue()) == results
    paths = write_answers(results, [image, image], "json", str(tmp_path / "p_"), stdout=io.StringIO())
    assert [json.load(open(p)) for p in paths] == results
    (path,) = write_answers(results[1:], [image], "csv", str(tmp_path / "one.csv"), stdout=io.StringIO())
    assert open(path).read().splitlines()[1].startswith("b/case2.nii.gz,nasion,1,0.9,")


def test_absent_landmarks_become_missing():
    lm = result_landmarks(_result(_oblique_volume()))
    assert lm.space == "index" and lm.present.tolist() == [True, False, True]
