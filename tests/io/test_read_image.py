"""read_image / write_image: choosing the format, and files that fit none."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image as PILImage

from lmk_tf.errors import ConfigError, ImageReadError
from lmk_tf.image import Image
from lmk_tf.io import detect_format, read_image, write_image
from tests.io.helpers import data_file


def test_content_wins_over_a_lying_suffix(tmp_path):
    shutil.copy(data_file("CT_small.dcm"), tmp_path / "scan.png")
    assert read_image(tmp_path / "scan.png").meta["format"] == "DICOM"
    PILImage.fromarray(np.zeros((2, 3), np.uint8)).save(tmp_path / "pic.jpg", format="PNG")
    assert read_image(tmp_path / "pic.jpg", spacing=1).meta["format"] == "PNG"


def test_dicom_without_suffix_is_found_by_its_preamble(tmp_path):
    shutil.copy(data_file("CT_small.dcm"), tmp_path / "IM0001")
    assert detect_format(str(tmp_path / "IM0001")).name == "DICOM"
    assert read_image(tmp_path / "IM0001").shape == (1, 128, 128)


def test_unknown_file_lists_the_formats_tried(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"\x01\x02\x03" * 100)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a recognised image file")
    for name in ("DICOM", "NIfTI", "MetaImage", "NRRD", "PNG/JPEG/BMP/TIFF", "DICOM series"):
        assert name in message


def test_empty_file(tmp_path):
    (tmp_path / "empty.nii").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.nii"):
        read_image(tmp_path / "empty.nii")


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match=r"nope\.dcm: no such file or directory"):
        read_image(tmp_path / "nope.dcm")


def test_path_through_a_file_is_unreadable(tmp_path):
    # A path whose parent is a regular file cannot be opened by anyone (root included).
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(ImageReadError, match=r"plain\.txt/scan\.dcm"):
        read_image(tmp_path / "plain.txt" / "scan.dcm")


def test_special_file_is_not_an_image():
    with pytest.raises(ImageReadError, match=r"/dev/null: not a regular file"):
        read_image("/dev/null")


def test_write_image_needs_a_known_suffix(tmp_path):
    with pytest.raises(ConfigError, match=r"out\.xyz"):
        write_image(Image(np.zeros((2, 2), np.uint8), (1, 1)), tmp_path / "out.xyz")


def test_write_into_missing_directory_is_a_package_error(tmp_path):
    image = Image(np.zeros((2, 2, 2), np.int16), (1, 1, 1))
    for name in ("a.nii.gz", "a.mha", "a.png"):
        target = tmp_path / "missing" / name
        if name.endswith(".png"):
            image = Image(np.zeros((2, 2), np.uint8), (1, 1))
        with pytest.raises(ConfigError, match="cannot write"):
            write_image(image, target)


def test_importing_the_io_layer_loads_no_heavy_library():
    code = (
        "import sys, lmk_tf.io, lmk_tf.io.landmarks; "
        "print([m for m in ('tensorflow', 'pydicom', 'nibabel', 'SimpleITK', 'PIL') if m in sys.modules])"
    )
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
