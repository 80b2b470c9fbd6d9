"""NIfTI-1/2 files (.nii, .nii.gz; nibabel) <-> Image.

NIfTI stores data as ``[i, j, k]`` and an affine from ``(i, j, k)`` to RAS
world mm. The package wants array-axis order ``[k, j, i]`` and LPS, so:

* array = data transposed (2, 1, 0);
* spacing = the affine's column norms, reversed (the affine, not the header
  zooms, because the affine is what places the voxels: the two disagree when
  a file's qform and sform differ);
* LPS affine = diag(-1, -1, 1) @ RAS affine (negate the first two world rows);
* origin = its translation; direction = its normalised columns, reversed.

A file whose header says 2D (dim[0] == 2) gives a 2D Image when its two axes lie
in the world x-y plane. Scaling (scl_slope/scl_inter) is applied by nibabel;
``meta['dtype']`` is the stored type.
"""

from __future__ import annotations

import os

import numpy as np

from lmk_tf.errors import ConfigError, ImageReadError
from lmk_tf.image import Image
from lmk_tf.io.common import check_file, check_image_size, orthonormalize, resolve_spacing

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def has_nifti_magic(head: bytes) -> bool:
    """NIfTI-1 single file ('n+1' at byte 344) or NIfTI-2 ('n+2' at byte 4)."""
    return head[344:348] == b"n+1\x00" or head[4:8] == b"n+2\x00"


def read_nifti(path: str, *, spacing=None) -> Image:
    """Read a .nii / .nii.gz file (conventions in the module docstring)."""
    import nibabel as nib

    path = os.fspath(path)
    check_file(path)
    try:
        img = nib.load(path)
    except Exception as e:  # nibabel raises ImageFileError, OSError, EOFError, ...
        raise ImageReadError(f"{path}: not a readable NIfTI file ({type(e).__name__}: {e})") from e
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ImageReadError(f"{path}: {type(img).__name__} is not a NIfTI image")
    check_image_size(img.shape, path)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as e:  # truncated gzip, short data block
        raise ImageReadError(f"{path}: cannot read the NIfTI voxel data ({type(e).__name__}: {e})") from e
    stored_dtype = str(img.get_data_dtype())
    header_ndim = int(img.header["dim"][0])

    # Trailing singleton dimensions (a 4D file with one volume) carry nothing.
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim > 3:
        raise ImageReadError(
            f"{path}: NIfTI with shape {list(data.shape)} has more than one volume; "
            "only 2D and 3D images are supported"
        )
    if data.ndim < 2:
        raise ImageReadError(f"{path}: NIfTI with shape {list(data.shape)} is not an image")
    if data.dtype.fields is not None or data.dtype.kind == "c":
        raise ImageReadError(f"{path}: NIfTI data type {data.dtype} (RGB or complex) is not supported")

    affine = _RAS_TO_LPS @ np.asarray(img.affine, dtype=np.float64)[:3]
    linear, origin = affine[:, :3], affine[:, 3]
    # The header stores float32; its shortest decimal (1.2, not 1.2000000476837158)
    # is the value the writer meant.
    zooms = np.array([float(str(np.float32(z))) for z in np.linalg.norm(linear, axis=0)])
    origin = np.array([float(str(np.float32(o))) for o in origin])
    if not np.all(zooms > 0):
        raise ImageReadError(f"{path}: NIfTI affine has a zero-length axis: {img.affine.tolist()}")

    if data.ndim == 2 or (header_ndim == 2 and data.ndim == 3 and data.shape[2] == 1):
        array, file_spacing, origin_, direction = _as_2d(data, linear, zooms, origin, path)
    else:
        if data.ndim == 2:
            data = data[:, :, None]
        direction_ijk = orthonormalize(linear / zooms, path, "NIfTI affine direction")
        array = np.transpose(data, (2, 1, 0))
        file_spacing = zooms[::-1]
        origin_ = origin
        direction = direction_ijk[:, ::-1]

    spacing_, source = resolve_spacing(list(file_spacing), spacing, path)
    meta = {
        "path": path,
        "format": "NIfTI",
        "modality": None,
        "dtype": stored_dtype,
        "spacing_source": source,
        "qform_code": int(img.header["qform_code"]),
        "sform_code": int(img.header["sform_code"]),
    }
    return Image(np.ascontiguousarray(array), spacing_, origin_, direction, meta)


def _as_2d(data, linear, zooms, origin, path):
    """A 2D NIfTI whose i, j axes lie in the world x-y plane -> 2D geometry."""
    data = data.reshape(data.shape[:2])
    columns = linear[:, :2] / zooms[:2]
    if np.any(np.abs(columns[2]) > 1e-6):
        raise ImageReadError(
            f"{path}: 2D NIfTI whose axes leave the x-y plane cannot be a 2D image "
            f"(affine {np.round(linear, 6).tolist()})"
        )
    direction_ij = orthonormalize(columns[:2], path, "NIfTI affine direction")
    return data.T, zooms[:2][::-1], origin[:2], direction_ij[:, ::-1]


def write_nifti(image: Image, path: str) -> None:
    """Write `image` as NIfTI-1 (.nii or .nii.gz) with qform and sform set."""
    import nibabel as nib

    path = os.fspath(path)
    ndim = image.ndim
    # Back from array-axis order/LPS to (i, j, k)/RAS.
    linear_ijk = image.direction[:, ::-1] * np.asarray(image.spacing)[::-1][None, :]
    affine = np.eye(4)
    flip = np.diag([-1.0, -1.0, 1.0])
    if ndim == 3:
        affine[:3, :3] = flip @ linear_ijk
        affine[:3, 3] = flip @ np.asarray(image.origin)
    else:
        affine[:2, :2] = flip[:2, :2] @ linear_ijk
        affine[:2, 3] = flip[:2, :2] @ np.asarray(image.origin)
    data = np.asarray(image.array)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    if data.dtype == np.float16:
        data = data.astype(np.float32)
    try:
        nii = nib.Nifti1Image(np.transpose(data), affine)
    except Exception as e:
        raise ConfigError(f"{path}: cannot store {data.dtype} data as NIfTI ({e})") from e
    nii.set_qform(affine, code=1)
    nii.set_sform(affine, code=1)
    try:
        nib.save(nii, path)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write ({e.strerror or e})") from e
