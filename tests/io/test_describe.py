"""describe(): what lmk-info reports, without the command."""

import json

import numpy as np
import pytest

from lmk_tf.image import Image
from lmk_tf.io import describe, format_description, read_image
from tests.io.helpers import data_file


def test_describe_ct_small():
    info = describe(read_image(data_file("CT_small.dcm")))
    assert info["shape"] == [1, 128, 128]
    assert info["spacing"] == pytest.approx([5.0, 0.661468, 0.661468])
    assert info["modality"] == "CT"
    assert info["format"] == "DICOM"
    assert info["dtype"] == "float32"
    assert info["stored_dtype"] == "int16"
    assert info["geometry_tags"]["origin"] == "ImagePositionPatient"
    assert info["value_range"][0] < info["value_range"][1]
    json.dumps(info)  # plain values only


def test_describe_handles_nan_and_empty_ranges():
    nan_image = Image(np.full((2, 2), np.nan, np.float32), (1, 1))
    assert describe(nan_image)["value_range"] is None
    mixed = Image(np.array([[np.nan, 1.0], [2.0, 3.0]]), (1, 1))
    assert describe(mixed)["value_range"] == [1.0, 3.0]


def test_text_description_has_one_line_per_fact():
    text = format_description(describe(read_image(data_file("CT_small.dcm"))))
    lines = text.splitlines()
    assert any(line.startswith("spacing ") and "0.661468" in line for line in lines)
    assert any(line.startswith("modality ") and "CT" in line for line in lines)
    assert any(line.startswith("spacing tags ") and "SliceThickness" in line for line in lines)
