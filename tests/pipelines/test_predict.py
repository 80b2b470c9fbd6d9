"""lmk-predict: in-process landmarks from files, in fresh processes."""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.serving.conftest import install_version
from tests.serving.server_process import REPO
from tests.serving.toy_model import NAMES, expected


def run_predict(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "pipelines.predict", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_predict_json_with_overlay_from_a_base_dir(tmp_path, toy_export):
    base = tmp_path / "toy"
    install_version(toy_export["2d"], str(base), 1)
    install_version(toy_export["2d"], str(base), 12)  # the highest version is used
    pixels = (np.random.default_rng(1).random((24, 18)) * 255).astype(np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "x.png")
    overlay = tmp_path / "pictures"
    result = run_predict(f"--model={base}", "--spacing=0.1,0.2", f"--overlay={overlay}",
                         str(tmp_path / "x.png"))
    assert result.returncode == 0, result.stderr
    (answer,) = json.loads(result.stdout)
    assert answer["model"]["version"] == 12
    assert [lm["name"] for lm in answer["landmarks"]] == NAMES
    want = expected(pixels, (0.1, 0.2))
    np.testing.assert_allclose([lm["index"] for lm in answer["landmarks"]], want["landmarks_index"],
                               rtol=1e-5)
    # A picture has origin 0 and ITK's identity direction: world x is the column, y the row.
    np.testing.assert_allclose([lm["world"] for lm in answer["landmarks"]],
                               np.asarray(want["landmarks_mm"])[:, ::-1], rtol=1e-5)
    with PILImage.open(overlay / "x.png") as picture:
        assert picture.size[0] >= 18 and picture.size[1] >= 24


@pytest.mark.slow
def test_predict_csv_from_a_version_dir_and_errors(tmp_path, toy_export):
    pixels = (np.random.default_rng(2).random((10, 12)) * 255).astype(np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "y.png")
    result = run_predict(f"--model={toy_export['2d']}", "--format=csv", "--spacing=1,1",
                         str(tmp_path / "y.png"))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["landmark"] for r in rows] == NAMES
    assert float(rows[2]["index_row"]) == 4.5 and float(rows[2]["index_col"]) == 5.5
    bad = run_predict(f"--model={tmp_path}", str(tmp_path / "y.png"))
    assert bad.returncode == 2
    assert f"{tmp_path}: neither a SavedModel" in bad.stderr and "Traceback" not in bad.stderr


def _oblique_nifti(path, pixels):
    """A NIfTI volume rotated about two axes, with a non-zero origin and anisotropic voxels."""
    from lmk_tf.image import Image as Volume
    from lmk_tf.io import read_image, write_image

    a, b = 0.6, 0.35
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    write_image(Volume(pixels, (2.0, 0.8, 0.6), (-61.5, 20.25, -230.0), rz @ ry), str(path))
    return read_image(str(path))


@pytest.mark.slow
def test_predict_slicer_markups_are_the_json_world_points(tmp_path, toy_export):
    from lmk_tf.io.landmarks import read_landmarks

    rng = np.random.default_rng(3)
    bright = _oblique_nifti(tmp_path / "case1.nii.gz", (rng.random((6, 9, 7)) * 100).astype(np.float32))
    # Every value below 0.1: the toy model reports its first two landmarks absent.
    faint = _oblique_nifti(tmp_path / "case2.nii.gz", (rng.random((5, 8, 6)) * 0.1).astype(np.float32))
    files = [str(tmp_path / "case1.nii.gz"), str(tmp_path / "case2.nii.gz")]
    model = f"--model={toy_export['3d']}"
    as_json = run_predict(model, *files)
    assert as_json.returncode == 0, as_json.stderr
    answers = json.loads(as_json.stdout)
    out = tmp_path / "slicer"
    mrk = run_predict(model, "--format=mrk.json", f"--output={out}/", *files)
    assert mrk.returncode == 0, mrk.stderr
    assert mrk.stdout.split() == [str(out / "case1.mrk.json"), str(out / "case2.mrk.json")]
    ras = run_predict(model, "--format=fcsv", "--coordinate_system=RAS", f"--output={tmp_path}/ras_", *files)
    assert ras.returncode == 0, ras.stderr
    for answer, image in zip(answers, (bright, faint)):
        stem = os.path.basename(answer["file"]).split(".")[0]
        present = [lm["present"] for lm in answer["landmarks"]]
        world = np.array([lm["world"] for lm in answer["landmarks"]])
        index = np.array([lm["index"] for lm in answer["landmarks"]])
        doc = json.load(open(out / f"{stem}.mrk.json"))
        node = doc["markups"][0]
        assert node["coordinateSystem"] == "LPS"
        assert [p["label"] for p in node["controlPoints"]] == NAMES
        assert [p["positionStatus"] == "defined" for p in node["controlPoints"]] == present
        for p, w, ok in zip(node["controlPoints"], world, present):
            if ok:
                np.testing.assert_allclose(p["position"], w, rtol=0, atol=1e-6)
        text = open(tmp_path / f"ras_{stem}.fcsv").read()
        assert "# CoordinateSystem = RAS" in text
        rows = list(csv.reader(line for line in text.splitlines() if not line.startswith("#")))
        for row, w, ok in zip(rows, world, present):
            assert row[14] == ("2" if ok else "3")
            if ok:  # RAS: x and y negated
                np.testing.assert_allclose([float(v) for v in row[1:4]], w * [-1, -1, 1], atol=1e-6)
        for path in (out / f"{stem}.mrk.json", tmp_path / f"ras_{stem}.fcsv"):
            back = read_landmarks(path, image=image)
            assert back.names == NAMES and back.present.tolist() == present
            np.testing.assert_allclose(back.points[present], index[present], atol=1e-5)
    assert present == [False, False, True]  # the faint volume's


def test_predict_refuses_slicer_formats_without_output(tmp_path):
    result = run_predict("--model=/nonexistent", "--format=mrk.json", str(tmp_path / "x.nii.gz"))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--format=mrk.json writes one file per image; give --output" in lines[0]
