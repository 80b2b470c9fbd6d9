"""PNG/JPEG/BMP/TIFF: grey conversion, bit depth, spacing from the caller."""

import warnings

import numpy as np
import pytest
from PIL import Image as PILImage

from lmk_tf.errors import ConfigError, ImageReadError
from lmk_tf.image import Image
from lmk_tf.io import read_image, write_image


def test_picture_without_spacing_warns_naming_the_file(tmp_path):
    PILImage.fromarray(np.zeros((4, 6), np.uint8)).save(tmp_path / "xray.png")
    with pytest.warns(UserWarning, match=r"xray\.png.*--spacing"):
        image = read_image(tmp_path / "xray.png")
    assert image.spacing == (1.0, 1.0)
    assert image.meta["spacing_source"] == "default"


def test_spacing_argument_silences_the_warning(tmp_path):
    PILImage.fromarray(np.zeros((4, 6), np.uint8)).save(tmp_path / "xray.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = read_image(tmp_path / "xray.png", spacing=[0.1, 0.2])
    assert image.shape == (4, 6)
    assert image.spacing == (0.1, 0.2)
    assert image.meta["spacing_source"] == "argument"
    assert image.meta["format"] == "PNG"


def test_16_bit_png_keeps_16_bits(tmp_path):
    data = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    PILImage.fromarray(data).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png", spacing=0.1)
    assert image.array.dtype == np.uint16
    np.testing.assert_array_equal(image.array, data)
    assert image.array.max() == 55000


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_rgb_pictures_become_luminance(tmp_path, suffix):
    rgb = np.random.default_rng(2).integers(0, 256, size=(5, 7, 3)).astype(np.uint8)
    PILImage.fromarray(rgb).save(tmp_path / f"c{suffix}")
    image = read_image(tmp_path / f"c{suffix}", spacing=1)
    expected = np.array(PILImage.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(image.array, expected)
    assert image.meta["converted_to_grey"] is True


def test_grey_stored_as_rgb_jpeg_comes_back_grey(tmp_path):
    grey = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (16, 1))
    PILImage.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "ceph.jpg", quality=95)
    image = read_image(tmp_path / "ceph.jpg", spacing=0.1)
    assert image.shape == (16, 32)
    assert image.meta["format"] == "JPEG"
    assert np.max(np.abs(image.array.astype(int) - grey.astype(int))) <= 4  # JPEG loss only


def test_truncated_png(tmp_path):
    PILImage.fromarray(np.random.default_rng(3).integers(0, 255, (64, 64)).astype(np.uint8)).save(
        tmp_path / "full.png"
    )
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.png"):
        read_image(tmp_path / "cut.png", spacing=1)


def test_multipage_tiff_is_refused(tmp_path):
    pages = [PILImage.fromarray(np.zeros((3, 3), np.uint8)) for _ in range(2)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(ImageReadError, match=r"stack\.tif.*2 pages"):
        read_image(tmp_path / "stack.tif", spacing=1)


@pytest.mark.parametrize("dtype,top", [(np.uint8, 255), (np.uint16, 65535)])
def test_png_write_round_trip(tmp_path, dtype, top):
    data = np.array([[0, 1], [top - 1, top]], dtype=dtype)
    write_image(Image(data, (0.1, 0.1)), tmp_path / "w.png")
    back = read_image(tmp_path / "w.png", spacing=0.1)
    assert back.array.dtype == dtype
    np.testing.assert_array_equal(back.array, data)


def test_png_write_refuses_floats_and_3d(tmp_path):
    with pytest.raises(ConfigError, match="integer"):
        write_image(Image(np.zeros((2, 2), np.float32), (1, 1)), tmp_path / "f.png")
    with pytest.raises(ConfigError, match="2D"):
        write_image(Image(np.zeros((2, 2, 2), np.uint8), (1, 1, 1)), tmp_path / "v.png")
