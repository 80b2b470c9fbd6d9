"""Hostile and broken image files for the catalogue (docs/reliability.md), built in tmp dirs."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np


def ct_small_path() -> str:
    from pydicom.data import get_testdata_file

    return get_testdata_file("CT_small.dcm")


def text_as_png(d) -> str:
    path = os.path.join(d, "notes.png")
    with open(path, "w") as f:
        f.write("these are not pixels\n" * 20)
    return path


def random_bytes_dcm(d) -> str:
    path = os.path.join(d, "noise.dcm")
    with open(path, "wb") as f:
        f.write(np.random.default_rng(0).bytes(4096))
    return path


def empty_file(d) -> str:
    path = os.path.join(d, "empty")
    open(path, "wb").close()
    return path


def truncated_dicom(d) -> str:
    data = open(ct_small_path(), "rb").read()
    path = os.path.join(d, "truncated.dcm")
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    return path


def corrupted_dicom(d) -> str:
    """Valid preamble, garbage where the data elements should be."""
    data = bytearray(open(ct_small_path(), "rb").read())
    rng = np.random.default_rng(1)
    data[140:1200] = rng.bytes(1060)
    path = os.path.join(d, "corrupted.dcm")
    with open(path, "wb") as f:
        f.write(bytes(data))
    return path


def dicom_without_spacing(d) -> str:
    """A CR-like 2D DICOM with no PixelSpacing/ImagerPixelSpacing tag."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = os.path.join(d, "nospacing.dcm")
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = 24, 20
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    pixels = (np.arange(24 * 20, dtype=np.uint16).reshape(24, 20) * 7) % 4096
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    assert pydicom.dcmread(path).get("PixelSpacing") is None
    return path


def huge_dicom_header(d) -> str:
    """A DICOM whose header claims 65535 x 65535 x 60000 frames over 32 KB of pixel data."""
    data = open(ct_small_path(), "rb").read()
    import pydicom

    ds = pydicom.dcmread(ct_small_path())
    ds.Rows, ds.Columns = 65535, 65535
    ds.NumberOfFrames = 60000
    path = os.path.join(d, "huge.dcm")
    ds.save_as(path)
    assert len(data) < 10**6
    return path


def nifti(d, name, array, zooms=None) -> str:
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(array), np.eye(4))
    if zooms is not None:
        img.header.set_zooms(zooms)
    path = os.path.join(d, name)
    nib.save(img, path)
    return path


def nan_nifti(d) -> str:
    array = np.random.default_rng(2).random((16, 12)).astype(np.float32)
    array[3, 4] = np.nan
    array[5, 6] = np.inf
    return nifti(d, "nan.nii", array, (0.5, 0.5))


def _nifti_header_only(path, shape, zooms=None) -> str:
    """A NIfTI-1 file that is its 352-byte header (claiming `shape` float32 voxels) and no data."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(shape)
    if zooms is not None:
        header.set_zooms(zooms)
    header["vox_offset"] = 352
    with open(path, "wb") as f:
        f.write(header.binaryblock)
        f.write(b"\0" * 4)
    return path


def huge_nifti_header(d) -> str:
    """A header claiming 30000^3 float32 voxels (NIfTI-1 dims are int16), no data."""
    return _nifti_header_only(os.path.join(d, "huge.nii"), (30000, 30000, 30000), (1.0, 1.0, 1.0))


def zero_axis_nifti(d) -> str:
    return _nifti_header_only(os.path.join(d, "zero.nii"), (0, 16, 16))


def _metaimage(d, name: str, dim_size: str, data: bytes) -> str:
    """A float MetaImage `name`.mhd whose header says `dim_size`, with `data` as its .raw file."""
    path = os.path.join(d, f"{name}.mhd")
    with open(path, "w") as f:
        f.write(f"ObjectType = Image\nNDims = 3\nDimSize = {dim_size}\n"
                "ElementType = MET_FLOAT\nElementSpacing = 1 1 1\n"
                f"ElementDataFile = {name}.raw\n")
    with open(os.path.join(d, f"{name}.raw"), "wb") as f:
        f.write(data)
    return path


def huge_metaimage_header(d) -> str:
    return _metaimage(d, "huge", "100000 100000 100000", b"\0" * 16)


def small_metaimage(d) -> str:
    """A good 4 x 5 x 6 MetaImage (the format of `huge_metaimage_header`, for warming up)."""
    return _metaimage(d, "small", "6 5 4", np.arange(120, dtype=np.float32).tobytes())


def small_files(d) -> list[str]:
    """One good small file per format of the HUGE cases: NIfTI, MetaImage, DICOM, PNG."""
    return [nifti(d, "small.nii", np.zeros((4, 5, 6), np.float32)), small_metaimage(d),
            ct_small_path(), good_png(d)]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_header(d) -> str:
    """A PNG whose IHDR says 100000 x 100000 pixels, followed by almost nothing."""
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))
    path = os.path.join(d, "huge.png")
    with open(path, "wb") as f:
        f.write(data)
    return path


def png(d, name, array) -> str:
    from PIL import Image as PILImage

    path = os.path.join(d, name)
    PILImage.fromarray(np.asarray(array, np.uint8)).save(path)
    return path


def one_pixel_png(d) -> str:
    return png(d, "dot.png", [[200]])


def good_png(d, name="good.png", seed=3) -> str:
    return png(d, name, np.random.default_rng(seed).random((20, 24)) * 255)
