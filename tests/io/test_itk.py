"""MetaImage and NRRD through SimpleITK: geometry agrees with ITK's own."""

import numpy as np
import pytest
import SimpleITK as sitk

from lmk_tf.errors import ImageReadError
from lmk_tf.image import Image
from lmk_tf.io import read_image, write_image


def _itk_image():
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)  # [k, j, i]
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.5, 0.6, 2.0))  # (i, j, k)
    img.SetOrigin((10.0, -5.0, 7.0))
    c, s = np.cos(0.5), np.sin(0.5)
    img.SetDirection([c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0])
    return img, arr


@pytest.mark.parametrize("suffix", [".mha", ".nrrd", ".mhd", ".nhdr"])
def test_geometry_matches_itk_index_to_physical(tmp_path, suffix):
    img, arr = _itk_image()
    path = str(tmp_path / f"vol{suffix}")
    sitk.WriteImage(img, path)
    image = read_image(path)
    assert image.shape == (4, 5, 6)
    assert image.spacing == pytest.approx((2.0, 0.6, 0.5))
    assert image.origin == pytest.approx((10.0, -5.0, 7.0))
    np.testing.assert_array_equal(image.array, arr)
    for i, j, k in [(0, 0, 0), (5, 1, 2), (3, 4, 3)]:
        expected = img.TransformIndexToPhysicalPoint((i, j, k))
        np.testing.assert_allclose(image.index_to_world([k, j, i]), expected, atol=1e-9)
    assert image.meta["format"] == ("NRRD" if "nrrd" in suffix or "nhdr" in suffix else "MetaImage")


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_write_read_round_trip(tmp_path, suffix):
    direction = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    original = Image(np.random.default_rng(1).random((3, 4, 5)).astype(np.float32), (3.0, 0.4, 0.7),
                     (-1.0, 2.0, -3.0), direction)
    write_image(original, tmp_path / f"x{suffix}")
    back = read_image(tmp_path / f"x{suffix}")
    np.testing.assert_array_equal(back.array, original.array)
    assert back.spacing == pytest.approx(original.spacing)
    assert back.origin == pytest.approx(original.origin)
    np.testing.assert_allclose(back.direction, original.direction, atol=1e-12)


def test_2d_metaimage_round_trip(tmp_path):
    original = Image(np.arange(20, dtype=np.uint16).reshape(4, 5), (0.1, 0.2), (1.0, 2.0))
    write_image(original, tmp_path / "flat.mha")
    back = read_image(tmp_path / "flat.mha")
    assert back.shape == (4, 5)
    assert back.spacing == pytest.approx((0.1, 0.2))
    assert back.array.dtype == np.uint16


def test_rgb_metaimage_becomes_grey(tmp_path):
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[..., 0] = 200
    img = sitk.GetImageFromArray(rgb, isVector=True)
    sitk.WriteImage(img, str(tmp_path / "rgb.mha"))
    image = read_image(tmp_path / "rgb.mha")
    assert image.shape == (3, 4)
    assert np.all(image.array == round(200 * 0.299))


def test_corrupted_metaimage(tmp_path):
    path = tmp_path / "bad.mha"
    path.write_text("ObjectType = Image\nNDims = 3\nDimSize = 10 10 10\nElementType = MET_SHORT\n"
                    "ElementDataFile = LOCAL\n" + "x" * 10)
    with pytest.raises(ImageReadError, match=r"bad\.mha: not a readable MetaImage file") as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_nrrd_with_missing_data_file(tmp_path):
    path = tmp_path / "h.nhdr"
    path.write_text("NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n"
                    "data file: missing.raw\n\n")
    with pytest.raises(ImageReadError, match=r"h\.nhdr"):
        read_image(path)
