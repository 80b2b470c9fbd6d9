"""A directory of single-frame DICOM slices -> one 3D Image.

* Only the directory's own files are read (not subdirectories), and files that
  are not DICOM (no 'DICM' preamble and no DICOM suffix) are skipped, so a
  README or a DICOMDIR beside the slices does no harm. A file that claims to be
  DICOM but cannot be parsed is an error naming it.
* Several series in one directory: the caller picks one by SeriesInstanceUID;
  without a choice the error lists every series with its slice count and
  description.
* Geometry follows `lmk_tf.io.dicom_geometry`: slices sorted by IPP projected
  on the IOP normal, spacing between slices measured from the positions (not
  SliceThickness), uneven steps (a missing slice) refused unless
  ``allow_uneven_slices=True``.
* Pixel values as for single files (`lmk_tf.io.dicom`), with the rescale
  applied per slice because PET and some MR series vary it from slice to slice.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from lmk_tf.errors import ImageReadError
from lmk_tf.image import Image
from lmk_tf.io import dicom, dicom_geometry
from lmk_tf.io.common import check_image_size, read_head, resolve_spacing

# DICOMDIR media storage directory: an index, not an image.
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


@dataclasses.dataclass
class SeriesInfo:
    """One series found in a directory."""

    uid: str
    description: str
    modality: str | None
    files: list[str]


def _is_candidate(path: str) -> bool:
    if os.path.basename(path).upper() == "DICOMDIR":
        return False
    if path.lower().endswith(dicom.DICOM_SUFFIXES):
        return True
    return dicom.has_dicom_magic(read_head(path, 132))


def list_series(directory: str) -> list[SeriesInfo]:
    """The image series in `directory` (headers only), in order of first file name."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ImageReadError(f"{directory}: not a directory")
    try:
        names = sorted(os.listdir(directory))
    except OSError as e:
        raise ImageReadError(f"{directory}: cannot list directory ({e.strerror or e})") from e
    files = [os.path.join(directory, n) for n in names]
    files = [f for f in files if os.path.isfile(f) and _is_candidate(f)]
    series: dict[str, SeriesInfo] = {}
    for path in files:
        try:
            ds = dicom.load_dataset(path, headers_only=True)
        except dicom.NotAnImageError:
            continue  # structured reports, presentation states, DICOMDIR, ...
        if ds.get("MediaStorageSOPClassUID") == _DICOMDIR_SOP_CLASS:
            continue
        uid = str(ds.get("SeriesInstanceUID", "")) or "(no SeriesInstanceUID)"
        info = series.setdefault(
            uid,
            SeriesInfo(uid, str(ds.get("SeriesDescription", "") or ""), ds.get("Modality"), []),
        )
        info.files.append(path)
    if not series:
        raise ImageReadError(
            f"{directory}: no DICOM image files in this directory "
            f"({len(names)} entries; subdirectories are not searched)"
        )
    return list(series.values())


def choose_series(directory: str, found: list[SeriesInfo], series_uid: str | None) -> SeriesInfo:
    """The series the caller asked for, or the only one."""
    if series_uid is not None:
        for info in found:
            if info.uid == series_uid:
                return info
        raise ImageReadError(
            f"{directory}: no series with SeriesInstanceUID {series_uid!r}; found "
            + _describe(found)
        )
    if len(found) > 1:
        raise ImageReadError(
            f"{directory}: {len(found)} series in one directory, choose one with "
            f"series_uid (--series_uid): " + _describe(found)
        )
    return found[0]


def _describe(found: list[SeriesInfo]) -> str:
    return "; ".join(
        f"{s.uid} ({len(s.files)} slices, {s.description or 'no description'!r})" for s in found
    )


def read_dicom_series(
    directory: str,
    *,
    series_uid: str | None = None,
    spacing=None,
    allow_uneven_slices: bool = False,
) -> Image:
    """Read one series from a directory of DICOM slices as a 3D Image."""
    directory = os.fspath(directory)
    dicom_warnings: list[str] = []
    with dicom.collect_pydicom_warnings(dicom_warnings):
        image = _read_series(directory, series_uid, spacing, allow_uneven_slices)
    if dicom_warnings:
        image.meta["dicom_warnings"] = dicom_warnings
    return image


def _read_series(directory, series_uid, spacing, allow_uneven_slices) -> Image:
    info = choose_series(directory, list_series(directory), series_uid)
    names = [os.path.basename(f) for f in info.files]
    datasets = [dicom.load_dataset(f) for f in info.files]

    sizes = {}
    for name, ds in zip(names, datasets):
        sizes.setdefault((int(ds.Rows), int(ds.Columns)), []).append(name)
    if len(sizes) > 1:
        listing = "; ".join(
            f"{r}x{c} in {len(n)} file(s) e.g. {', '.join(n[:3])}" for (r, c), n in sizes.items()
        )
        raise ImageReadError(
            f"{directory}: slices of series {info.uid} differ in size (rows x columns): {listing}"
        )

    (rows, columns), = sizes
    check_image_size([len(datasets), rows, columns], directory, what="series")
    frames, slopes, intercepts, notes = [], [], [], {}
    for path, ds in zip(info.files, datasets):
        f, notes = dicom.decode_frames(ds, path)
        if f.shape[0] != 1:
            raise ImageReadError(
                f"{path}: multi-frame file ({f.shape[0]} frames) inside a series directory; "
                "read the file on its own"
            )
        s, i = dicom.frame_rescale(ds, 1)
        frames.append(f[0])
        slopes.append(s[0])
        intercepts.append(i[0])
    slopes, intercepts = np.asarray(slopes), np.asarray(intercepts)

    first = datasets[0]
    (row, col), tag, spacing_notes = dicom.inplane_spacing(first, info.files[0])
    for name, ds in zip(names[1:], datasets[1:]):
        other, _, _ = dicom.inplane_spacing(ds, name)
        if not _same_spacing(other, [row, col]):
            raise ImageReadError(
                f"{directory}: {name} has pixel spacing {other}, {names[0]} has {[row, col]}"
            )

    direction, origin, order, slice_spacing, slice_tag = _series_geometry(
        directory, info.files, names, datasets, allow_uneven_slices
    )
    array = dicom.apply_rescale(np.stack(frames), slopes, intercepts)[order]
    spacing_, source = resolve_spacing([slice_spacing, row, col], spacing, directory)

    meta = {
        "path": directory,
        "format": "DICOM series",
        "modality": str(first.get("Modality")) if first.get("Modality") else None,
        "series_uid": info.uid,
        "series_description": info.description,
        "files": [names[i] for i in order],
        "dtype": notes["dtype"],
        "photometric": notes["photometric"],
        "geometry_tags": {
            "spacing": [slice_tag, tag, tag],
            "origin": "ImagePositionPatient" if origin is not None else None,
            "direction": "ImageOrientationPatient" if direction is not None else None,
        },
        "spacing_source": source,
    }
    for key in ("converted_to_grey", "inverted_monochrome1"):
        if key in notes:
            meta[key] = notes[key]
    if not (np.all(slopes == 1.0) and np.all(intercepts == 0.0)):
        meta["rescale"] = {"slope": slopes[order].tolist(), "intercept": intercepts[order].tolist()}
    if spacing_notes:
        meta["geometry_notes"] = spacing_notes
    return Image(array, spacing_, origin, direction, meta)


def _same_spacing(a: list, b: list) -> bool:
    if None in a or None in b:
        return a == b
    return bool(np.allclose(a, b, rtol=1e-3))


def _series_geometry(directory, files, names, datasets, allow_uneven):
    """(direction, origin, order, slice spacing, slice-spacing tag) of a series."""
    if len(datasets) == 1:
        # One slice: the same geometry a lone file gets.
        image_geometry = dicom.classic_volume_geometry(datasets[0], 1, files[0], allow_uneven)
        order, file_spacing, origin, direction, tags, _ = image_geometry
        return direction, origin, order, file_spacing[0], tags["spacing"][0]
    for path, _name, ds in zip(files, names, datasets):
        for tag in ("ImageOrientationPatient", "ImagePositionPatient"):
            if not ds.get(tag):
                raise ImageReadError(
                    f"{path}: no {tag}; slices without it cannot be ordered into a volume"
                )
    direction = dicom_geometry.volume_direction(datasets[0].ImageOrientationPatient, files[0])
    for path, ds in zip(files[1:], datasets[1:]):
        other = dicom_geometry.volume_direction(ds.ImageOrientationPatient, path)
        if not np.allclose(other, direction, atol=1e-3):
            raise ImageReadError(
                f"{directory}: {os.path.basename(path)} has ImageOrientationPatient "
                f"{list(ds.ImageOrientationPatient)}, {names[0]} has "
                f"{list(datasets[0].ImageOrientationPatient)}; slices in several orientations "
                "are not one volume"
            )
    positions = np.stack(
        [dicom_geometry.parse_ipp(ds.ImagePositionPatient, p) for p, ds in zip(files, datasets)]
    )
    stack = dicom_geometry.stack_geometry(positions, direction, names, directory, allow_uneven)
    return direction, stack.origin, stack.order, stack.slice_spacing, "ImagePositionPatient"
