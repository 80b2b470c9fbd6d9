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
