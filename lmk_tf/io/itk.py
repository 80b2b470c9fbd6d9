"""MetaImage (.mha/.mhd) and NRRD (.nrrd/.nhdr) files (SimpleITK) <-> Image.

ITK works in LPS like the package, and `GetArrayFromImage` already returns
``[k, j, i]`` = array-axis order. Only the per-axis lists are in ITK's
``(i, j, k)`` order, so spacing is reversed and the direction matrix (row-major,
columns = axes i, j, k) has its columns reversed. Origin is used as is.
Vector images (RGB) are converted to grey luminance.
"""

from __future__ import annotations

import os

import numpy as np

from lmk_tf.errors import ConfigError, ImageReadError
from lmk_tf.image import Image
from lmk_tf.io.common import (
    check_file,
    check_image_size,
    orthonormalize,
    resolve_spacing,
    rgb_to_grey,
)

METAIMAGE_SUFFIXES = (".mha", ".mhd")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
ITK_SUFFIXES = METAIMAGE_SUFFIXES + NRRD_SUFFIXES


def has_metaimage_magic(head: bytes) -> bool:
    text = head.lstrip()
    return text.startswith((b"ObjectType", b"NDims"))


def has_nrrd_magic(head: bytes) -> bool:
    return head.startswith(b"NRRD000")


def read_itk(path: str, *, spacing=None) -> Image:
    """Read a MetaImage or NRRD file."""
    import SimpleITK as sitk

    path = os.fspath(path)
    check_file(path)
    fmt = "NRRD" if path.lower().endswith(NRRD_SUFFIXES) else "MetaImage"
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()  # header only: the size is checked before any pixel
        check_image_size(
            list(reader.GetSize()) + [reader.GetNumberOfComponents()], path
        )
        img = reader.Execute()
    except RuntimeError as e:
        # ITK's messages span many lines with C++ file names; keep the gist.
        gist = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
        raise ImageReadError(f"{path}: not a readable {fmt} file ({gist.strip()})") from e
    ndim = img.GetDimension()
    if ndim not in (2, 3):
        raise ImageReadError(f"{path}: {fmt} image has {ndim} dimensions; only 2D and 3D are supported")
    array = sitk.GetArrayFromImage(img)
    stored_dtype = str(array.dtype)
    converted = False
    if img.GetNumberOfComponentsPerPixel() > 1:
        if array.shape[-1] not in (3, 4):
            raise ImageReadError(
                f"{path}: {fmt} image has {img.GetNumberOfComponentsPerPixel()} components "
                "per pixel; only grey and RGB(A) are supported"
            )
        array = rgb_to_grey(array)
        converted = True
    if array.dtype.kind == "c":
        raise ImageReadError(f"{path}: complex {fmt} images are not supported")

    direction_ijk = np.asarray(img.GetDirection(), dtype=np.float64).reshape(ndim, ndim)
    direction = orthonormalize(direction_ijk[:, ::-1], path, f"{fmt} direction")
    file_spacing = [float(s) if s > 0 else None for s in img.GetSpacing()][::-1]
    spacing_, source = resolve_spacing(file_spacing, spacing, path)
    meta = {
        "path": path,
        "format": fmt,
        "modality": None,
        "dtype": stored_dtype,
        "spacing_source": source,
    }
    if converted:
        meta["converted_to_grey"] = True
    return Image(array, spacing_, img.GetOrigin(), direction, meta)


def write_itk(image: Image, path: str) -> None:
    """Write `image` as MetaImage or NRRD, chosen by the suffix, compressed."""
    import SimpleITK as sitk

    path = os.fspath(path)
    data = np.asarray(image.array)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    try:
        img = sitk.GetImageFromArray(data)
    except Exception as e:
        raise ConfigError(f"{path}: cannot store {data.dtype} data with SimpleITK ({e})") from e
    img.SetSpacing([float(s) for s in image.spacing[::-1]])
    img.SetOrigin([float(o) for o in image.origin])
    img.SetDirection([float(v) for v in image.direction[:, ::-1].reshape(-1)])
    try:
        sitk.WriteImage(img, path, True)
    except RuntimeError as e:
        raise ConfigError(f"{path}: cannot write ({str(e).strip().splitlines()[-1]})") from e
