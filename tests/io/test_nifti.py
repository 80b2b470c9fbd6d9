"""NIfTI: axis order, RAS -> LPS, scaling, round trips and bad files."""

import gzip
import os

import nibabel as nib
import numpy as np
import pytest

from lmk_tf.errors import ImageReadError
from lmk_tf.image import Image
from lmk_tf.io import read_image, write_image

NIBABEL_DATA = os.path.join(os.path.dirname(nib.__file__), "tests", "data")


def _save(path, data, affine, **header):
    img = nib.Nifti1Image(data, affine)
    for key, value in header.items():
        img.header[key] = value
    nib.save(img, str(path))
    return str(path)


def test_zooms_and_shape_become_array_axis_order(tmp_path):
    path = _save(tmp_path / "z.nii.gz", np.zeros((20, 30, 40), np.int16), np.diag([0.5, 0.7, 1.2, 1.0]))
    image = read_image(path)
    assert image.shape == (40, 30, 20)
    assert image.spacing == pytest.approx((1.2, 0.7, 0.5))
    assert image.meta["format"] == "NIfTI"
    assert image.meta["dtype"] == "int16"
    assert image.meta["modality"] is None


def test_voxels_and_world_positions_match_nibabel(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1000, size=(5, 6, 7)).astype(np.int16)
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # not a plain diagonal
    affine = np.eye(4)
    affine[:3, :3] = rotation * [0.8, 0.9, 2.0]
    affine[:3, 3] = [10.0, -20.0, 30.0]
    image = read_image(_save(tmp_path / "r.nii", data, affine))
    i, j, k = 4, 1, 6
    assert image.array[k, j, i] == data[i, j, k]
    ras = affine @ [i, j, k, 1]
    lps = ras[:3] * [-1, -1, 1]
    np.testing.assert_allclose(image.index_to_world([k, j, i]), lps, atol=1e-6)
    np.testing.assert_allclose(image.world_to_index(lps), [k, j, i], atol=1e-6)
    assert image.origin == pytest.approx((-10.0, 20.0, 30.0))


def test_scaled_data_is_read_as_floats_with_stored_type_in_meta(tmp_path):
    img = nib.Nifti1Image(np.full((2, 3, 4), 10, np.int16), np.eye(4))
    img.header.set_slope_inter(0.5, -1.0)
    nib.save(img, str(tmp_path / "s.nii"))
    image = read_image(tmp_path / "s.nii")
    assert image.array.dtype.kind == "f"
    assert np.all(image.array == 4.0)
    assert image.meta["dtype"] == "int16"


def test_real_nibabel_file():
    path = os.path.join(NIBABEL_DATA, "anatomical.nii")
    nii = nib.load(path)
    image = read_image(path)
    assert image.shape == nii.shape[::-1]
    assert image.spacing == pytest.approx(tuple(float(z) for z in nii.header.get_zooms()[::-1]))
    centre = np.array(nii.shape) // 2
    lps = (nii.affine @ [*centre, 1])[:3] * [-1, -1, 1]
    np.testing.assert_allclose(image.index_to_world(centre[::-1]), lps, atol=1e-4)


def test_four_d_with_several_volumes_is_refused():
    with pytest.raises(ImageReadError, match=r"example4d\.nii\.gz.*more than one volume"):
        read_image(os.path.join(NIBABEL_DATA, "example4d.nii.gz"))


def test_four_d_with_one_volume_is_3d(tmp_path):
    path = _save(tmp_path / "one.nii.gz", np.ones((3, 4, 5, 1), np.float32), np.eye(4))
    assert read_image(path).shape == (5, 4, 3)


def test_sheared_affine_is_refused(tmp_path):
    affine = np.eye(4)
    affine[0, 1] = 0.5
    path = _save(tmp_path / "shear.nii", np.zeros((2, 2, 2), np.uint8), affine)
    with pytest.raises(ImageReadError, match=r"shear\.nii.*not orthonormal"):
        read_image(path)


def test_truncated_nifti(tmp_path):
    path = _save(tmp_path / "t.nii", np.ones((20, 20, 20), np.float32), np.eye(4))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"t\.nii"):
        read_image(path)


def test_corrupted_gzip(tmp_path):
    path = tmp_path / "c.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header at all" * 20))
    with pytest.raises(ImageReadError, match=r"c\.nii\.gz"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_3d_round_trip_keeps_geometry(tmp_path, suffix):
    c, s = np.cos(0.4), np.sin(0.4)
    direction = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])[:, [2, 0, 1]]
    original = Image(
        np.arange(60, dtype=np.int16).reshape(3, 4, 5), (2.5, 0.5, 0.75), (1.0, -2.0, 3.0), direction
    )
    write_image(original, tmp_path / f"rt{suffix}")
    back = read_image(tmp_path / f"rt{suffix}")
    np.testing.assert_array_equal(back.array, original.array)
    assert back.spacing == pytest.approx(original.spacing)
    assert back.origin == pytest.approx(original.origin, abs=1e-5)
    np.testing.assert_allclose(back.direction, original.direction, atol=1e-6)


def test_2d_round_trip(tmp_path):
    original = Image(np.arange(12, dtype=np.uint8).reshape(3, 4), (0.2, 0.3), (5.0, 6.0))
    write_image(original, tmp_path / "flat.nii.gz")
    back = read_image(tmp_path / "flat.nii.gz")
    assert back.ndim == 2
    np.testing.assert_array_equal(back.array, original.array)
    assert back.spacing == pytest.approx((0.2, 0.3))
    assert back.origin == pytest.approx((5.0, 6.0))


def test_spacing_argument_overrides_the_affine(tmp_path):
    path = _save(tmp_path / "o.nii.gz", np.zeros((2, 3, 4), np.uint8), np.diag([0.5, 0.7, 1.2, 1.0]))
    image = read_image(path, spacing=[3.0, 2.0, 1.0])
    assert image.spacing == (3.0, 2.0, 1.0)
    assert image.meta["spacing_source"] == "argument"


def test_one_dimensional_nifti_is_refused(tmp_path):
    path = _save(tmp_path / "line.nii", np.zeros(5, np.float32), np.eye(4))
    with pytest.raises(ImageReadError, match=r"line\.nii.*not an image"):
        read_image(path)
