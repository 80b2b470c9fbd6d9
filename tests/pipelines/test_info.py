"""lmk-info, run as a real command in a subprocess."""

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage
from pydicom.data import get_testdata_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def lmk_info(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "pipelines.info", *map(str, args)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )


def test_ct_small_json():
    result = lmk_info(get_testdata_file("CT_small.dcm"), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["spacing"][1:] == pytest.approx([0.661468, 0.661468])
    assert info["shape"] == [1, 128, 128]
    assert info["modality"] == "CT"
    for key in ("shape", "spacing", "origin", "direction", "dtype", "modality",
                "value_range", "format", "geometry_tags", "path"):
        assert key in info
    assert result.stderr == ""


def test_nifti_json(tmp_path):
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((20, 30, 40), np.float32), np.diag([0.5, 0.7, 1.2, 1.0])), str(path))
    result = lmk_info(path, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["shape"] == [40, 30, 20]
    assert info["spacing"] == [1.2, 0.7, 0.5]  # the values written, not float32 noise
    assert info["format"] == "NIfTI"


def test_corrupted_dicom_is_one_line_and_exit_2(tmp_path):
    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    path = tmp_path / "broken.dcm"
    path.write_bytes(data[: len(data) // 2])
    result = lmk_info(path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "broken.dcm" in lines[0] and "error" in lines[0]
    assert result.stdout == ""


def test_missing_file_is_one_line_and_exit_2(tmp_path):
    result = lmk_info(tmp_path / "absent.nii.gz")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(f"error: {tmp_path / 'absent.nii.gz'}: no such file or directory")


def test_text_output_and_spacing_flag_for_a_picture(tmp_path):
    PILImage.fromarray(np.zeros((3, 5), np.uint8)).save(tmp_path / "x.png")
    result = lmk_info(tmp_path / "x.png", "--spacing=0.1")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = {line.split("  ")[0].strip(): line for line in result.stdout.splitlines()}
    assert "[0.1, 0.1] mm  (from argument)" in lines["spacing"]
    assert "3 x 5" in lines["shape"]


def test_picture_without_spacing_warns_on_one_line(tmp_path):
    PILImage.fromarray(np.zeros((3, 5), np.uint8)).save(tmp_path / "x.png")
    result = lmk_info(tmp_path / "x.png", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["spacing"] == [1.0, 1.0]
    warning_lines = result.stderr.strip().splitlines()
    assert len(warning_lines) == 1
    assert ": warning: " in warning_lines[0] and "x.png" in warning_lines[0]
    assert "--spacing" in warning_lines[0]


def test_bad_spacing_flag(tmp_path):
    PILImage.fromarray(np.zeros((3, 5), np.uint8)).save(tmp_path / "x.png")
    result = lmk_info(tmp_path / "x.png", "--spacing=0.1,abc")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--spacing" in result.stderr
