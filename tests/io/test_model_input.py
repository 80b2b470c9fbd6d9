"""encode_for_request: the bytes serving_encoded gets hold exactly the pixels the reader gave."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from pydicom.data import get_testdata_file

from lmk_tf.image import Image
from lmk_tf.io import read_image
from lmk_tf.io.model_input import encode_for_request

RNG = np.random.default_rng(0)


def saved(tmp_path, name, pixels, **kwargs):
    path = str(tmp_path / name)
    PILImage.fromarray(pixels).save(path, **kwargs)
    return path, read_image(path, spacing=(0.1, 0.1))


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(data)))


@pytest.mark.parametrize("name, pixels", [
    ("grey8.png", RNG.integers(0, 256, (30, 20), dtype=np.uint8)),
    ("grey16.png", RNG.integers(0, 65536, (30, 20), dtype=np.uint16)),
    ("grey.jpg", RNG.integers(0, 256, (30, 20), dtype=np.uint8)),
    ("colour.jpg", RNG.integers(0, 256, (30, 20, 3), dtype=np.uint8)),
])
def test_jpeg_and_grey_png_files_go_as_they_are(tmp_path, name, pixels):
    path, image = saved(tmp_path, name, pixels)
    with open(path, "rb") as f:
        assert encode_for_request(path, image) == f.read()


@pytest.mark.parametrize("name, pixels", [
    ("colour.png", RNG.integers(0, 256, (30, 20, 3), dtype=np.uint8)),  # libpng's grey would not be Pillow's
    ("grey.bmp", RNG.integers(0, 256, (30, 20), dtype=np.uint8)),
    ("grey.tif", RNG.integers(0, 65536, (30, 20), dtype=np.uint16)),
])
def test_other_pictures_go_as_a_lossless_png_of_the_pixels_read(tmp_path, name, pixels):
    path, image = saved(tmp_path, name, pixels)
    data = encode_for_request(path, image)
    assert data.startswith(b"\x89PNG")
    np.testing.assert_array_equal(decoded(data), image.array)
    assert decoded(data).dtype == (np.uint8 if image.array.max() <= 255 else np.uint16)


def test_dicom_pixel_data_goes_as_a_16_bit_png():
    path = get_testdata_file("RG1_UNCI.dcm")  # a 1955 x 1841 radiograph, 16-bit
    image = read_image(path, spacing=(0.1, 0.1))
    data = encode_for_request(path, image)
    pixels = decoded(data)
    assert pixels.dtype == np.uint16 and image.array.max() > 255
    np.testing.assert_array_equal(pixels, image.array)
    assert len(data) < image.array.size * 4 / 2  # under half the float32 tensor (noisy 16-bit data)


@pytest.mark.parametrize("array, why", [
    (np.zeros((4, 5, 6), np.float32), "a volume"),
    (np.array([[0.5, 1.0], [2.0, 3.0]], np.float32), "fractional values"),
    (np.array([[-1, 0], [2, 3]], np.int16), "negative values"),
    (np.array([[0, 70000], [2, 3]], np.int32), "more than 16 bits"),
    (np.array([[np.nan, 1.0], [2.0, 3.0]], np.float32), "not finite"),
])
def test_pixels_no_png_holds_exactly_go_as_a_tensor(tmp_path, array, why):
    image = Image(array, (1.0,) * array.ndim, None, None, {"format": "NIfTI"})
    assert encode_for_request(str(tmp_path / "unused"), image) is None, why


def test_integral_floats_become_a_png(tmp_path):
    array = np.array([[0.0, 300.0], [2.0, 65535.0]], np.float32)  # e.g. rescaled DICOM values
    data = encode_for_request(str(tmp_path / "unused"), Image(array, (1.0, 1.0), None, None, {}))
    np.testing.assert_array_equal(decoded(data), array)
