"""Single DICOM files: geometry from tags, pixel conventions, and every bad input."""

import warnings

import numpy as np
import pydicom
import pytest

from lmk_tf.errors import ConfigError, ImageReadError
from lmk_tf.io import read_image
from lmk_tf.io.common import rgb_to_grey
from tests.io.helpers import ct_small, data_file, save_modified


def test_ct_small_is_a_one_slice_volume_placed_by_its_tags():
    ds = ct_small()
    image = read_image(data_file("CT_small.dcm"))
    assert image.shape == (1, 128, 128)
    assert image.spacing == pytest.approx((5.0, 0.661468, 0.661468))
    assert image.origin == pytest.approx([float(v) for v in ds.ImagePositionPatient])
    # IOP rows (1,0,0) and columns (0,1,0): array axes slice, row, col -> z, y, x.
    np.testing.assert_allclose(image.direction, [[0, 0, 1], [0, 1, 0], [1, 0, 0]], atol=1e-12)
    assert image.meta["format"] == "DICOM"
    assert image.meta["modality"] == "CT"
    assert image.meta["dtype"] == "int16"
    assert image.meta["spacing_source"] == "file"
    assert image.meta["geometry_tags"] == {
        "spacing": ["SliceThickness", "PixelSpacing", "PixelSpacing"],
        "origin": "ImagePositionPatient",
        "direction": "ImageOrientationPatient",
    }


def test_ct_rescale_gives_float32_hounsfield_units():
    ds = ct_small()
    image = read_image(data_file("CT_small.dcm"))
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    assert (slope, intercept) != (1.0, 0.0)
    assert image.array.dtype == np.float32
    np.testing.assert_allclose(image.array[0], ds.pixel_array * slope + intercept)


def test_identity_rescale_keeps_the_stored_integer_type():
    ds = pydicom.dcmread(data_file("MR_small.dcm"))
    image = read_image(data_file("MR_small.dcm"))
    assert image.array.dtype == np.int16
    np.testing.assert_array_equal(image.array[0], ds.pixel_array)
    assert image.spacing == pytest.approx((0.8, 0.3125, 0.3125))


def test_row_and_column_spacing_keep_dicom_order(tmp_path):
    # PixelSpacing = [distance between rows, distance between columns].
    path = save_modified(data_file("CT_small.dcm"), tmp_path / "aniso.dcm", PixelSpacing=[0.7, 0.3])
    image = read_image(path)
    assert image.spacing == pytest.approx((5.0, 0.7, 0.3))
    origin = np.asarray(image.origin)
    # One row down moves along IOP's column direction (0,1,0) by 0.7 mm.
    np.testing.assert_allclose(image.index_to_world([0, 1, 0]), origin + [0, 0.7, 0])
    np.testing.assert_allclose(image.index_to_world([0, 0, 1]), origin + [0.3, 0, 0])


def test_oblique_slice_world_matches_the_dicom_formula():
    # MR2_UNCR: IOP (0.569, 0.822, 0, 0, 0, -1), a sagittal-oblique slice.
    ds = pydicom.dcmread(data_file("MR2_UNCR.dcm"), stop_before_pixels=True)
    image = read_image(data_file("MR2_UNCR.dcm"))
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
    dr, dc = (float(v) for v in ds.PixelSpacing)
    r, c = 17.0, 301.0
    expected = ipp + iop[:3] * dc * c + iop[3:] * dr * r  # DICOM PS3.3 C.7.6.2.1.1
    np.testing.assert_allclose(image.index_to_world([0, r, c]), expected, atol=1e-3)
    np.testing.assert_allclose(image.world_to_index(expected), [0, r, c], atol=1e-3)


@pytest.mark.parametrize(
    "name", ["MR_small_jp2klossless.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm"]
)
def test_compressed_and_big_endian_files_decode_to_the_same_pixels(name):
    plain = read_image(data_file("MR_small.dcm"))
    other = read_image(data_file(name))
    np.testing.assert_array_equal(other.array, plain.array)
    assert other.spacing == plain.spacing
    assert other.origin == plain.origin


def test_projection_image_without_position_is_2d():
    image = read_image(data_file("JPEG2000.dcm"))  # NM, JPEG 2000, no IPP/IOP
    assert image.ndim == 2
    assert image.spacing == pytest.approx((2.26, 2.26))
    assert image.origin == (0.0, 0.0)
    assert image.meta["geometry_tags"]["spacing"] == ["PixelSpacing", "PixelSpacing"]


def test_classic_multiframe_is_a_volume_with_slice_spacing_from_tags():
    with pytest.warns(UserWarning, match=r"emri_small\.dcm.*axes \[1, 2\]"):
        image = read_image(data_file("emri_small.dcm"))
    assert image.shape == (10, 64, 64)
    assert image.spacing == pytest.approx((1.2, 1.0, 1.0))  # SpacingBetweenSlices, no PixelSpacing
    assert image.meta["spacing_source"] == "default"


def test_enhanced_multiframe_orders_frames_along_the_normal():
    ds = pydicom.dcmread(data_file("eCT_Supplemental.dcm"))
    image = read_image(data_file("eCT_Supplemental.dcm"))
    # Frame 1 is at z=-159, frame 2 at z=-149; IOP (-1,0,0,0,1,0) has normal (0,0,-1),
    # so frame 2 comes first and the slice axis points to -z.
    assert image.shape == (2, 512, 512)
    assert image.spacing == pytest.approx((10.0, 0.388672, 0.388672))
    assert image.origin == pytest.approx((99.5, -301.5, -149.0))
    np.testing.assert_allclose(image.direction[:, 0], [0, 0, -1], atol=1e-9)
    np.testing.assert_allclose(image.index_to_world([1, 0, 0]), [99.5, -301.5, -159.0])
    # Rescale comes from the shared Pixel Value Transformation (intercept -1024).
    np.testing.assert_allclose(image.array[0], ds.pixel_array[1].astype(np.float32) - 1024)
    assert image.meta["geometry_tags"]["origin"] == "PlanePositionSequence.ImagePositionPatient"


def test_enhanced_segmentation_multiframe():
    image = read_image(data_file("liver.dcm"))
    assert image.shape == (3, 512, 512)
    assert image.spacing == pytest.approx((1.0, 0.810547, 0.810547))
    assert image.origin == pytest.approx((-235.2, -226.8, -128.69))


def test_rt_dose_frames_are_placed_by_grid_frame_offsets():
    image = read_image(data_file("rtdose.dcm"))
    assert image.shape == (15, 10, 10)
    assert image.spacing == pytest.approx((5.0, 10.0, 10.0))
    assert image.meta["geometry_tags"]["spacing"][0] == "GridFrameOffsetVector"


def test_monochrome1_is_inverted_within_the_stored_bits():
    ds = pydicom.dcmread(data_file("RG3_UNCR.dcm"))
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    with pytest.warns(UserWarning, match="RG3_UNCR.dcm"):
        image = read_image(data_file("RG3_UNCR.dcm"))
    top = 2 ** int(ds.BitsStored) - 1
    np.testing.assert_array_equal(image.array, top - ds.pixel_array.astype(np.int64))
    assert image.array.dtype == np.uint16
    assert image.meta["inverted_monochrome1"] is True


def test_zero_pixel_spacing_counts_as_absent():
    # RG1 (a real CR) writes PixelSpacing 0.000\0.000.
    with pytest.warns(UserWarning, match=r"RG1_UNCR\.dcm: the file states no spacing"):
        image = read_image(data_file("RG1_UNCR.dcm"))
    assert image.spacing == (1.0, 1.0)
    assert image.meta["spacing_source"] == "default"
    assert "PixelSpacing" in image.meta["geometry_notes"][0]


def _radiograph(tmp_path, name, **tags):
    """A CR file: CT_small's pixels without the cross-sectional position tags."""
    changes = dict(
        Modality="CR",
        ImagePositionPatient=None,
        ImageOrientationPatient=None,
        PixelSpacing=None,
    )
    changes.update(tags)
    return save_modified(data_file("CT_small.dcm"), tmp_path / name, **changes)


def test_pixel_spacing_wins_over_imager_pixel_spacing(tmp_path):
    path = _radiograph(tmp_path, "both.dcm", PixelSpacing=[0.1, 0.12], ImagerPixelSpacing=[0.11, 0.13])
    image = read_image(path)
    assert image.ndim == 2
    assert image.spacing == pytest.approx((0.1, 0.12))
    assert image.meta["geometry_tags"]["spacing"] == ["PixelSpacing", "PixelSpacing"]


def test_imager_pixel_spacing_is_corrected_by_magnification(tmp_path):
    path = _radiograph(
        tmp_path, "imager.dcm", ImagerPixelSpacing=[0.11, 0.132], EstimatedRadiographicMagnificationFactor=1.1
    )
    image = read_image(path)
    assert image.spacing == pytest.approx((0.1, 0.12))
    assert image.meta["geometry_tags"]["spacing"][0] == (
        "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"
    )


def test_imager_pixel_spacing_alone_is_used_as_is(tmp_path):
    path = _radiograph(tmp_path, "imager_only.dcm", ImagerPixelSpacing=[0.15, 0.16])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file has a spacing: no warning
        image = read_image(path)
    assert image.spacing == pytest.approx((0.15, 0.16))
    assert image.meta["spacing_source"] == "file"


def test_missing_spacing_warns_and_spacing_argument_supplies_it(tmp_path):
    path = _radiograph(tmp_path, "nospacing.dcm")
    with pytest.warns(UserWarning, match="nospacing.dcm"):
        image = read_image(path)
    assert image.spacing == (1.0, 1.0)
    assert image.meta["spacing_source"] == "default"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = read_image(path, spacing=0.1)
    assert image.spacing == (0.1, 0.1)
    assert image.meta["spacing_source"] == "argument"


def test_spacing_argument_overrides_the_file():
    image = read_image(data_file("CT_small.dcm"), spacing=[2.0, 0.5, 0.4])
    assert image.spacing == (2.0, 0.5, 0.4)
    assert image.meta["spacing_source"] == "argument"


@pytest.mark.parametrize("bad", [[0.5, 0.5], [0.0], [-1.0, 1.0, 1.0]])
def test_spacing_argument_that_cannot_fit_is_refused(bad):
    with pytest.raises(ConfigError, match=r"CT_small\.dcm.*spacing"):
        read_image(data_file("CT_small.dcm"), spacing=bad)


@pytest.mark.parametrize("name", ["US1_UNCR.dcm", "SC_ybr_full_uncompressed.dcm", "US1_J2KR.dcm"])
def test_colour_dicom_becomes_grey_luminance(name):
    ds = pydicom.dcmread(data_file(name))
    decoder = pydicom.pixels.get_decoder(ds.file_meta.TransferSyntaxUID)
    rgb, _ = decoder.as_array(ds, as_rgb=True)
    image = read_image(data_file(name), spacing=0.2)
    assert image.ndim == 2
    assert image.array.dtype == np.uint8
    np.testing.assert_array_equal(image.array, rgb_to_grey(rgb))
    assert image.meta["converted_to_grey"] is True


def test_ycbcr_dicom_grey_is_its_luma_channel():
    ds = pydicom.dcmread(data_file("SC_ybr_full_uncompressed.dcm"))
    decoder = pydicom.pixels.get_decoder(ds.file_meta.TransferSyntaxUID)
    ybr, _ = decoder.as_array(ds, as_rgb=False)
    image = read_image(data_file("SC_ybr_full_uncompressed.dcm"))
    # Y is the luminance; going through RGB and back costs at most rounding.
    assert np.max(np.abs(image.array.astype(int) - ybr[..., 0].astype(int))) <= 2


def test_palette_colour_dicom_becomes_grey():
    with pytest.warns(UserWarning):
        image = read_image(data_file("examples_palette.dcm"))
    assert image.shape == (350, 800)
    assert image.meta["photometric"] == "PALETTE COLOR"


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.98])
def test_truncated_dicom_is_an_image_read_error(tmp_path, keep):
    data = open(data_file("CT_small.dcm"), "rb").read()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageReadError, match="truncated.dcm"):
        read_image(path)


def test_real_truncated_file_from_pydicom():
    with pytest.raises(ImageReadError, match=r"MR_truncated\.dcm.*pixel data"):
        read_image(data_file("MR_truncated.dcm"))


def test_dicom_without_pixel_data(tmp_path):
    path = save_modified(data_file("CT_small.dcm"), tmp_path / "nopixels.dcm", PixelData=None)
    with pytest.raises(ImageReadError, match=r"nopixels\.dcm.*no PixelData"):
        read_image(path)


def test_dicom_that_is_not_an_image():
    with pytest.raises(ImageReadError, match=r"rtplan\.dcm.*no image"):
        read_image(data_file("rtplan.dcm"))


def test_text_file_named_dcm(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("this is not DICOM\n" * 20)
    with pytest.raises(ImageReadError, match="notes.dcm"):
        read_image(path)


def test_corrupted_header_bytes(tmp_path):
    data = bytearray(open(data_file("CT_small.dcm"), "rb").read())
    data[140:400] = b"\xff" * 260  # garbage right after the preamble
    path = tmp_path / "garbled.dcm"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="garbled.dcm"):
        read_image(path)


def test_pydicom_warnings_are_kept_in_meta_not_printed():
    # bad_sequence.dcm has a UI value pydicom warns about when it is used.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = read_image(data_file("bad_sequence.dcm"))
    assert image.shape == (1, 512, 512)
    assert any("Invalid value for VR UI" in w for w in image.meta["dicom_warnings"])


def test_undecodable_compressed_data_is_one_error_line():
    # 12-bit JPEG Extended: no installed decoder handles it; each says why.
    with pytest.raises(ImageReadError, match=r"JPEG-lossy\.dcm: cannot decode") as info:
        read_image(data_file("JPEG-lossy.dcm"))
    assert "\n" not in str(info.value)


def test_file_without_meta_information_is_still_read():
    # OT-PAL-8-face.dcm predates DICOM Part 10: no preamble, no transfer syntax.
    with pytest.warns(UserWarning, match="OT-PAL-8-face"):
        image = read_image(data_file("OT-PAL-8-face.dcm"))
    assert image.shape == (480, 640)
    assert image.meta["converted_to_grey"] is True


def test_invalid_number_of_frames_is_an_image_read_error():
    with pytest.raises(ImageReadError, match=r"badVR\.dcm.*'1A'"):
        read_image(data_file("badVR.dcm"))
