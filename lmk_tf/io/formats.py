"""`read_image` / `write_image`: pick the format module for a path.

A directory is a DICOM series. For a file the content decides first (DICOM
preamble, NIfTI/NRRD/MetaImage headers, picture magic numbers), because a
suffix may lie (a JPEG named .png, a DICOM named .img); only when no magic
number fits does the suffix choose. When neither fits, the error lists every
format that was considered.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from lmk_tf.errors import ConfigError, ImageReadError
from lmk_tf.image import Image
from lmk_tf.io import dicom, dicom_series, itk, nifti, raster
from lmk_tf.io.common import check_file, read_head


@dataclasses.dataclass(frozen=True)
class Format:
    """One readable file format."""

    name: str
    suffixes: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    read: Callable[..., Image]


FORMATS = (
    Format("DICOM", dicom.DICOM_SUFFIXES, dicom.has_dicom_magic, dicom.read_dicom_file),
    Format("NIfTI", nifti.NIFTI_SUFFIXES, nifti.has_nifti_magic, nifti.read_nifti),
    Format("MetaImage", itk.METAIMAGE_SUFFIXES, itk.has_metaimage_magic, itk.read_itk),
    Format("NRRD", itk.NRRD_SUFFIXES, itk.has_nrrd_magic, itk.read_itk),
    Format(
        "PNG/JPEG/BMP/TIFF",
        raster.RASTER_SUFFIXES,
        lambda head: raster.raster_magic(head) is not None,
        raster.read_raster,
    ),
)


def detect_format(path: str) -> Format:
    """The format of an existing file, by content first, then by suffix."""
    head = read_head(path, 512)
    for fmt in FORMATS:
        if fmt.sniff(head):
            return fmt
    lower = path.lower()
    for fmt in FORMATS:
        if lower.endswith(fmt.suffixes):
            return fmt
    tried = ", ".join(f"{f.name} ({' '.join(f.suffixes)})" for f in FORMATS)
    what = "an empty file" if not head else "not a recognised image file"
    raise ImageReadError(f"{path}: {what}; tried {tried} and DICOM series (a directory)")


def read_image(
    path: str | os.PathLike,
    *,
    series_uid: str | None = None,
    spacing=None,
    allow_uneven_slices: bool = False,
) -> Image:
    """Read a medical image file or DICOM series directory into an Image.

    Args:
      path: a DICOM file, a directory of DICOM slices, .nii/.nii.gz, .mha/.mhd,
        .nrrd/.nhdr, or .png/.jpg/.bmp/.tif.
      series_uid: which SeriesInstanceUID to read when a directory holds several.
      spacing: mm per pixel/voxel (one number, or one per array axis in
        array-axis order); overrides the file's own spacing. Needed for plain
        pictures and DICOM files without spacing tags, which otherwise get
        1.0 mm and a warning.
      allow_uneven_slices: read series/multi-frame files whose slice steps vary
        by more than 1% (a warning, mean spacing) instead of refusing them.

    Returns:
      The Image; ``meta`` holds 'path', 'format', 'modality', 'dtype' (stored),
      'spacing_source' and, for DICOM, 'geometry_tags'.

    Raises:
      ImageReadError: for anything wrong with the file(s), naming the path.
      ConfigError: for a `spacing` argument that cannot fit the image.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return dicom_series.read_dicom_series(
            path, series_uid=series_uid, spacing=spacing, allow_uneven_slices=allow_uneven_slices
        )
    check_file(path)
    fmt = detect_format(path)
    if fmt.name == "DICOM":
        return fmt.read(path, spacing=spacing, allow_uneven_slices=allow_uneven_slices)
    return fmt.read(path, spacing=spacing)


def write_image(image: Image, path: str | os.PathLike) -> None:
    """Write an Image to .nii/.nii.gz, .mha/.mhd, .nrrd/.nhdr or .png.

    NIfTI, MetaImage and NRRD keep spacing, origin and direction exactly as
    `read_image` reads them back; PNG keeps only the pixels (8- or 16-bit).
    """
    path = os.fspath(path)
    lower = path.lower()
    if lower.endswith(nifti.NIFTI_SUFFIXES):
        nifti.write_nifti(image, path)
    elif lower.endswith(itk.ITK_SUFFIXES):
        itk.write_itk(image, path)
    elif lower.endswith(".png"):
        raster.write_png(image, path)
    else:
        raise ConfigError(
            f"{path}: cannot choose an image format from this name; use .nii.gz, .nii, "
            ".mha, .mhd, .nrrd, .nhdr or .png"
        )
