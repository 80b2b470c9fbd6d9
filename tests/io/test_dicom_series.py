"""DICOM series directories: ordering, spacing from positions, choosing a series, errors."""

import os
import shutil

import numpy as np
import pytest

from lmk_tf.errors import ImageReadError
from lmk_tf.io import read_image
from lmk_tf.io.dicom_series import list_series
from tests.io.helpers import ct_small, data_file, write_series

DICOMDIR_TESTS = os.path.join(os.path.dirname(data_file("CT_small.dcm")), "dicomdirtests", "98892003")


def test_slices_are_sorted_by_position_not_by_file_name(tmp_path):
    # File order 2, 0, 3, 1 along z; SliceThickness is 5 mm but slices are 2.5 mm apart.
    z = [5.0, 0.0, 7.5, 2.5]
    write_series(tmp_path, z)
    image = read_image(tmp_path)
    assert image.shape == (4, 128, 128)
    assert image.spacing == pytest.approx((2.5, 0.661468, 0.661468))
    # write_series adds 10 * file number to CT_small's pixels: sorted order is files 1, 3, 0, 2.
    base = ct_small().pixel_array.astype(np.float32) * float(ct_small().RescaleSlope) + float(
        ct_small().RescaleIntercept
    )
    for slot, file_no in enumerate([1, 3, 0, 2]):
        np.testing.assert_allclose(image.array[slot], base + 10 * file_no)
    first_ipp = [float(v) for v in ct_small().ImagePositionPatient]
    assert image.origin == pytest.approx(first_ipp)  # z = 0 is the lowest slice
    np.testing.assert_allclose(image.index_to_world([3, 0, 0]), np.add(first_ipp, [0, 0, 7.5]), atol=1e-6)
    assert image.meta["format"] == "DICOM series"
    assert image.meta["files"] == ["slice001.dcm", "slice003.dcm", "slice000.dcm", "slice002.dcm"]
    assert image.meta["geometry_tags"]["spacing"] == ["ImagePositionPatient", "PixelSpacing", "PixelSpacing"]


def test_oblique_series_is_ordered_along_the_normal(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    iop = (c, s, 0.0, 0.0, 0.0, -1.0)  # rows along (c, s, 0), columns head-to-feet
    write_series(tmp_path, [3.0, 0.0, 6.0], iop=iop)
    image = read_image(tmp_path)
    normal = np.cross(iop[:3], iop[3:])
    np.testing.assert_allclose(image.direction[:, 0], normal, atol=1e-6)
    np.testing.assert_allclose(image.direction[:, 1], iop[3:], atol=1e-6)
    np.testing.assert_allclose(image.direction[:, 2], iop[:3], atol=1e-6)
    assert image.spacing[0] == pytest.approx(3.0)
    step = image.index_to_world([1, 0, 0]) - image.index_to_world([0, 0, 0])
    np.testing.assert_allclose(step, 3.0 * normal, atol=1e-5)


def test_missing_slice_is_refused(tmp_path):
    write_series(tmp_path, [0.0, 2.5, 5.0, 10.0])  # 7.5 is missing
    with pytest.raises(ImageReadError, match=r"uneven slice spacing.*allow_uneven_slices"):
        read_image(tmp_path)


def test_uneven_slices_allowed_use_the_mean_spacing_with_a_warning(tmp_path):
    write_series(tmp_path, [0.0, 2.5, 5.0, 10.0])
    with pytest.warns(UserWarning, match="uneven slice spacing"):
        image = read_image(tmp_path, allow_uneven_slices=True)
    assert image.spacing[0] == pytest.approx(10.0 / 3)


def test_small_rounding_in_positions_is_even(tmp_path):
    write_series(tmp_path, [0.0, 2.501, 4.999, 7.5])  # < 1% deviation
    image = read_image(tmp_path)
    assert image.spacing[0] == pytest.approx(2.5)


def test_duplicate_positions_are_refused(tmp_path):
    write_series(tmp_path, [0.0, 2.5, 2.5])
    with pytest.raises(ImageReadError, match="same position"):
        read_image(tmp_path)


def test_several_series_need_a_choice(tmp_path):
    write_series(tmp_path, [0.0, 1.0, 2.0], series_uid="1.2.3.4", description="axial",
                 file_names=["a0.dcm", "a1.dcm", "a2.dcm"])
    write_series(tmp_path, [0.0, 2.0], series_uid="1.2.3.5", description="scout",
                 file_names=["b0.dcm", "b1.dcm"])
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path)
    message = str(info.value)
    assert "1.2.3.4 (3 slices, 'axial')" in message
    assert "1.2.3.5 (2 slices, 'scout')" in message
    image = read_image(tmp_path, series_uid="1.2.3.5")
    assert image.shape == (2, 128, 128)
    assert image.spacing[0] == pytest.approx(2.0)
    assert image.meta["series_uid"] == "1.2.3.5"
    with pytest.raises(ImageReadError, match=r"no series with SeriesInstanceUID '9.9'"):
        read_image(tmp_path, series_uid="9.9")


def test_mixed_sizes_name_the_files(tmp_path):
    write_series(tmp_path, [0.0, 1.0, 2.0], rows_cols=[None, (64, 128), None])
    with pytest.raises(ImageReadError, match=r"differ in size.*128x128.*64x128 in 1 file\(s\) e\.g\. slice001\.dcm"):
        read_image(tmp_path)


def test_mixed_orientations_are_refused(tmp_path):
    write_series(tmp_path, [0.0, 1.0], file_names=["x0.dcm", "x1.dcm"], series_uid="1.5")
    write_series(tmp_path, [2.0], file_names=["x2.dcm"], series_uid="1.5", iop=(1, 0, 0, 0, 0, -1))
    with pytest.raises(ImageReadError, match=r"x2\.dcm has ImageOrientationPatient"):
        read_image(tmp_path)


def test_per_slice_rescale_is_applied_per_slice(tmp_path):
    values = [np.full((4, 4), 100, np.int16)] * 3
    write_series(tmp_path, [0.0, 1.0, 2.0], values=values, rescale=[(1, 0), (2, 0), (1, -50)])
    image = read_image(tmp_path)
    assert image.array.dtype == np.float32
    assert image.array[:, 0, 0].tolist() == [100.0, 200.0, 50.0]


def test_identity_rescale_keeps_integers(tmp_path):
    values = [np.full((4, 4), v, np.int16) for v in (7, 8)]
    write_series(tmp_path, [0.0, 1.0], values=values, rescale=[(1, 0), (1, 0)])
    image = read_image(tmp_path)
    assert image.array.dtype == np.int16
    assert image.meta["dtype"] == "int16"


def test_single_slice_series_reads_like_the_single_file(tmp_path):
    shutil.copy(data_file("CT_small.dcm"), tmp_path / "only.dcm")
    from_dir = read_image(tmp_path)
    from_file = read_image(data_file("CT_small.dcm"))
    assert from_dir.shape == from_file.shape == (1, 128, 128)
    assert from_dir.spacing == from_file.spacing
    np.testing.assert_allclose(from_dir.direction, from_file.direction)
    np.testing.assert_array_equal(from_dir.array, from_file.array)


def test_non_dicom_files_beside_the_slices_are_ignored(tmp_path):
    write_series(tmp_path, [0.0, 1.0])
    (tmp_path / "README.txt").write_text("scanner export\n")
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 200)
    assert read_image(tmp_path).shape == (2, 128, 128)


def test_corrupted_slice_is_named(tmp_path):
    paths = write_series(tmp_path, [0.0, 1.0, 2.0])
    data = open(paths[1], "rb").read()
    open(paths[1], "wb").write(data[: len(data) - 3000])
    with pytest.raises(ImageReadError, match="slice001.dcm"):
        read_image(tmp_path)


def test_slice_cut_before_its_image_module_is_not_skipped(tmp_path):
    paths = write_series(tmp_path, [0.0, 1.0, 2.0])
    data = open(paths[2], "rb").read()
    open(paths[2], "wb").write(data[:1500])  # ends before Rows/Columns
    with pytest.raises(ImageReadError, match=r"slice002\.dcm.*truncated"):
        read_image(tmp_path)


def test_non_image_dicom_beside_the_slices_is_skipped(tmp_path):
    write_series(tmp_path, [0.0, 1.0])
    shutil.copy(data_file("rtplan.dcm"), tmp_path / "plan.dcm")
    assert read_image(tmp_path).shape == (2, 128, 128)


def test_directory_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here\n")
    with pytest.raises(ImageReadError, match=r"no DICOM image files in this directory"):
        read_image(tmp_path)


def test_empty_directory(tmp_path):
    with pytest.raises(ImageReadError, match=str(tmp_path)):
        read_image(tmp_path)


# ----------------------------------------------------------------- pydicom's real series


def test_real_directory_with_three_series_lists_them():
    with pytest.raises(ImageReadError, match=r"3 series in one directory") as info:
        read_image(os.path.join(DICOMDIR_TESTS, "MR2"))
    assert "T/S/C RF FAST PILOT" in str(info.value)
    assert "FAST LOCALIZER" in str(info.value)


def test_real_series_of_three_orientations_is_refused():
    # MR2's pilot series holds an axial, a sagittal and a coronal slice.
    found = {s.uid: s for s in list_series(os.path.join(DICOMDIR_TESTS, "MR2"))}
    pilot = next(s for s in found.values() if len(s.files) == 3)
    with pytest.raises(ImageReadError, match="several orientations"):
        read_image(os.path.join(DICOMDIR_TESTS, "MR2"), series_uid=pilot.uid)


def test_real_single_slice_series_chosen_by_uid():
    found = list_series(os.path.join(DICOMDIR_TESTS, "MR1"))
    assert sorted(len(s.files) for s in found) == [1, 1, 1]
    image = read_image(os.path.join(DICOMDIR_TESTS, "MR1"), series_uid=found[0].uid)
    assert image.shape == (1, 16, 16)
    assert image.spacing[1:] == pytest.approx((1.367188, 1.367188))


def test_real_radial_series_is_refused():
    # MR700: angiography projections rotated about an axis, not a stack.
    with pytest.raises(ImageReadError, match="several orientations"):
        read_image(os.path.join(DICOMDIR_TESTS, "MR700"))
