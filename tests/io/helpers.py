"""Real DICOM test files and small DICOM series built from them."""

from __future__ import annotations

import copy
import os

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid


def data_file(name: str) -> str:
    """Path of a file shipped with pydicom or pydicom-data (fails loudly if absent)."""
    path = get_testdata_file(name)
    assert path is not None, f"{name} is missing from pydicom / pydicom-data"
    return path


def ct_small() -> pydicom.Dataset:
    return pydicom.dcmread(data_file("CT_small.dcm"))


def write_series(
    directory,
    z_positions,
    *,
    series_uid: str | None = None,
    description: str = "test series",
    iop=(1, 0, 0, 0, 1, 0),
    file_names=None,
    rows_cols=None,
    values=None,
    rescale=None,
) -> list[str]:
    """Write CT_small copies as a series; slice i sits at z_positions[i] along the normal.

    Pixel values of slice i are CT_small's + 10 * i (so order can be checked),
    unless `values` gives them.
    """
    base = ct_small()
    os.makedirs(directory, exist_ok=True)
    uid = series_uid or generate_uid()
    row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row_dir, col_dir)
    origin = np.asarray([float(v) for v in base.ImagePositionPatient])
    paths = []
    for i, z in enumerate(z_positions):
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = uid
        ds.SeriesDescription = description
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.ImagePositionPatient = [round(float(v), 6) for v in origin + z * normal]
        pixels = base.pixel_array.astype(np.int16) + 10 * i if values is None else values[i]
        if rows_cols is not None and rows_cols[i] is not None:
            r, c = rows_cols[i]
            pixels = pixels[:r, :c]
        pixels = np.ascontiguousarray(pixels.astype(np.int16))
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelData = pixels.tobytes()
        if rescale is not None:
            ds.RescaleSlope, ds.RescaleIntercept = rescale[i]
        name = file_names[i] if file_names else f"slice{i:03d}.dcm"
        path = os.path.join(directory, name)
        ds.save_as(path)
        paths.append(path)
    return paths


def save_modified(src: str, dst, **changes) -> str:
    """Copy a DICOM file with attributes set (value) or deleted (None)."""
    ds = pydicom.dcmread(src)
    for key, value in changes.items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(str(dst))
    return str(dst)
