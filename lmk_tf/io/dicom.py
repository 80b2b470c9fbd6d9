"""Single DICOM files (pydicom) -> Image.

What comes out, by kind of file:

* Cross-sectional single frame (CT, MR, PT, ... with both ImagePositionPatient
  and ImageOrientationPatient): a 3D volume of shape ``[1, H, W]``. Spacing is
  ``[SliceThickness (else SpacingBetweenSlices), PixelSpacing[0],
  PixelSpacing[1]]``, origin is IPP, direction columns are ``[normal, IOP[3:],
  IOP[:3]]`` with ``normal = IOP[:3] x IOP[3:]``. Choosing 3D keeps the slice's
  true place in the patient, so landmarks in world mm stay correct and a
  single slice reads the same way as a one-file series.
* Multi-frame files, classic (NumberOfFrames > 1) or enhanced
  (Per-frame / Shared Functional Groups): a 3D volume ``[frames, H, W]``. When
  every frame has a position (PlanePositionSequence, or IPP +
  GridFrameOffsetVector for RT dose), frames are ordered along the normal and
  their spacing measured from the positions, as for a series
  (`lmk_tf.io.dicom_geometry`); otherwise frames keep file order and the slice
  spacing comes from SpacingBetweenSlices / SliceThickness.
* Everything else (CR, DX, MG, XA, US, NM, secondary capture, ...): a 2D image
  ``[H, W]``, origin 0, identity direction: a projection has no 3D place.

In-plane spacing. DICOM PixelSpacing is ``[row spacing, column spacing]``
(distance between rows first), which is already array-axis order. When a file
has both PixelSpacing and ImagerPixelSpacing, PixelSpacing wins: it is
calibrated to the patient plane, whereas ImagerPixelSpacing is measured at the
detector and includes the geometric magnification (about 10% for a
cephalogram). With only ImagerPixelSpacing it is divided by
EstimatedRadiographicMagnificationFactor when present, else used as is. A
spacing of 0 (some CR files write ``0.000``) counts as absent. The `spacing`
argument overrides all of this; where nothing is known the reader falls back to
1.0 mm with a warning (``meta['spacing_source']`` says which happened).

Pixel values. Colour (RGB, YBR, palette) is converted to grey luminance in the
stored integer type. MONOCHROME1 is inverted within the stored bit range so
that bright means dense, as in MONOCHROME2. RescaleSlope/Intercept (top level,
or Pixel Value Transformation per frame) are applied; the result is float32
unless they are identity, in which case the stored integer type is kept.
``meta['dtype']`` is always the stored type.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np

from lmk_tf.errors import ImageReadError
from lmk_tf.image import Image
from lmk_tf.io import dicom_geometry
from lmk_tf.io.common import (
    check_file,
    check_image_size,
    read_head,
    resolve_spacing,
    rgb_to_grey,
    valid_spacing,
)

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")


class NotAnImageError(ImageReadError):
    """A valid DICOM object without an image (report, plan, DICOMDIR, ...)."""


@contextlib.contextmanager
def collect_pydicom_warnings(sink: list[str]):
    """Move pydicom's warnings into `sink`; let every other warning through.

    pydicom warns about sloppy but harmless values (a VR mismatch, padding);
    users cannot act on them and they would break the commands' one-line
    output, so they go to ``meta['dicom_warnings']`` instead.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield sink
    for w in caught:
        if os.sep + "pydicom" + os.sep in (w.filename or ""):
            sink.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def one_line(error: BaseException) -> str:
    """An exception's message on one line (some decoders list every plugin's reason)."""
    return " ".join(str(error).split())


def has_dicom_magic(head: bytes) -> bool:
    """Whether file bytes start with a DICOM Part 10 preamble."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def load_dataset(path: str, *, headers_only: bool = False):
    """Parse a DICOM file, turning every pydicom failure into ImageReadError.

    Files without the Part 10 preamble are parsed with ``force=True`` (old
    exports often lack it); callers decide beforehand that the file should be
    DICOM. Wrap calls in `collect_pydicom_warnings`: pydicom converts values
    lazily, so its warnings come whenever a tag is first used.
    """
    import pydicom

    check_file(path)
    force = not has_dicom_magic(read_head(path, 132))
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=headers_only, force=force)
    except Exception as e:  # pydicom raises many types for bad bytes
        raise ImageReadError(
            f"{path}: not a readable DICOM file ({type(e).__name__}: {one_line(e)})"
        ) from e
    if "Rows" not in ds or "Columns" not in ds:
        kind = _sop_class_name(ds)
        if "Image" in kind:
            # An image class without its image module: cut short, not a report
            # to skip quietly (a series would silently lose a slice).
            raise ImageReadError(
                f"{path}: DICOM file of class {kind} has no Rows/Columns; "
                "the file is truncated or corrupted"
            )
        raise NotAnImageError(
            f"{path}: DICOM file has no image (no Rows/Columns; SOP class {kind}); "
            "it is not an image or the file is truncated"
        )
    return ds


def _sop_class_name(ds) -> str:
    uid = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
    if uid is None:
        return "unknown"
    return getattr(uid, "name", str(uid))


def decode_frames(ds, path: str) -> tuple[np.ndarray, dict]:
    """Stored pixel values as grey frames ``[F, R, C]`` (before rescale).

    Returns the frames and notes for Image.meta: 'dtype' (stored), 'photometric',
    and whether colour was converted or MONOCHROME1 inverted.
    """
    from pydicom.pixels import apply_color_lut, get_decoder

    if "PixelData" not in ds:
        raise ImageReadError(
            f"{path}: DICOM file has no PixelData (SOP class {_sop_class_name(ds)}); "
            "it is not an image or the file is truncated"
        )
    check_image_size(header_shape(ds, path), path)
    tsyntax = _transfer_syntax(ds)
    try:
        arr, info = get_decoder(tsyntax).as_array(ds, as_rgb=True)
    except Exception as e:  # decoders raise ValueError, RuntimeError, NotImplementedError...
        name = getattr(tsyntax, "name", tsyntax)
        raise ImageReadError(
            f"{path}: cannot decode the pixel data (transfer syntax {name}): {one_line(e)}"
        ) from e
    photometric = str(info.get("photometric_interpretation", ""))

    notes = {"dtype": str(arr.dtype), "photometric": photometric}
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    n_frames = _number_of_frames(ds, path)
    if photometric == "PALETTE COLOR":
        try:
            arr = apply_color_lut(arr, ds)
        except Exception as e:
            raise ImageReadError(f"{path}: cannot apply the palette colour table: {e}") from e
        samples = 3
    if samples > 1:
        if arr.shape[-1] not in (3, 4):
            raise ImageReadError(
                f"{path}: colour DICOM with SamplesPerPixel={samples} decoded to shape "
                f"{arr.shape}; cannot convert it to grey"
            )
        arr = rgb_to_grey(arr)
        notes["converted_to_grey"] = True
    frames = arr[None] if arr.ndim == 2 else arr
    if frames.ndim != 3 or frames.shape[0] != n_frames:
        raise ImageReadError(
            f"{path}: NumberOfFrames is {n_frames} but the pixel data holds "
            f"{frames.shape[0]} frames"
        )
    if photometric == "MONOCHROME1":
        frames = _invert_monochrome1(frames, ds)
        notes["inverted_monochrome1"] = True
    return frames, notes


def header_shape(ds, path: str) -> list[int]:
    """[frames, rows, columns, samples] as the header states them (nothing decoded)."""
    try:
        return [_number_of_frames(ds, path), int(ds.Rows), int(ds.Columns),
                int(ds.get("SamplesPerPixel", 1) or 1)]
    except (TypeError, ValueError) as e:
        raise ImageReadError(f"{path}: Rows/Columns/SamplesPerPixel are not numbers ({e})") from e


def _transfer_syntax(ds):
    """The file's transfer syntax, or the one its bytes were parsed with."""
    from pydicom import uid

    tsyntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    if tsyntax:
        return tsyntax
    # Files without meta information (pre-Part 10): pydicom knows the encoding it used.
    implicit, little = ds.original_encoding
    if implicit:
        return uid.ImplicitVRLittleEndian
    return uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian


def _number_of_frames(ds, path: str) -> int:
    value = ds.get("NumberOfFrames", 1)
    try:
        n = int(value) if value not in (None, "") else 1
    except (TypeError, ValueError) as e:
        raise ImageReadError(f"{path}: NumberOfFrames is not a number: {value!r}") from e
    if n < 1:
        raise ImageReadError(f"{path}: NumberOfFrames must be >= 1, got {n}")
    return n


def _invert_monochrome1(frames: np.ndarray, ds) -> np.ndarray:
    """Map MONOCHROME1 (low = white) onto MONOCHROME2 within the stored bits."""
    bits = int(ds.get("BitsStored", frames.dtype.itemsize * 8) or frames.dtype.itemsize * 8)
    if np.issubdtype(frames.dtype, np.signedinteger):
        # [-2^(b-1), 2^(b-1)-1] maps onto itself under x -> -1 - x.
        return (-1 - frames.astype(np.int64)).astype(frames.dtype)
    if np.issubdtype(frames.dtype, np.integer):
        top = (1 << bits) - 1
        return np.clip(top - frames.astype(np.int64), 0, top).astype(frames.dtype)
    return (frames.max() + frames.min() - frames).astype(frames.dtype)


def frame_rescale(ds, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (slopes, intercepts) from the frame, shared or top-level tags."""
    slopes = np.ones(n_frames)
    intercepts = np.zeros(n_frames)
    top_slope = valid_float(ds.get("RescaleSlope"), 1.0)
    top_intercept = valid_float(ds.get("RescaleIntercept"), 0.0)
    for i in range(n_frames):
        item = functional_item(ds, i, "PixelValueTransformationSequence")
        if item is not None and "RescaleSlope" in item:
            slopes[i] = valid_float(item.get("RescaleSlope"), 1.0)
            intercepts[i] = valid_float(item.get("RescaleIntercept"), 0.0)
        else:
            slopes[i], intercepts[i] = top_slope, top_intercept
    return slopes, intercepts


def valid_float(value, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if np.isfinite(v) else default


def apply_rescale(frames: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    """Modality LUT: float32 unless every frame's rescale is the identity."""
    if np.all(slopes == 1.0) and np.all(intercepts == 0.0):
        return frames
    out = frames.astype(np.float32)
    out *= slopes.astype(np.float32)[:, None, None]
    out += intercepts.astype(np.float32)[:, None, None]
    return out


def functional_item(ds, frame: int, sequence: str):
    """First item of a functional-group `sequence` for `frame` (per-frame wins)."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(groups)
        if seq is None or len(seq) <= index:
            continue
        inner = seq[index].get(sequence)
        if inner:
            return inner[0]
    return None


def inplane_spacing(ds, path: str) -> tuple[list[float | None], str | None, list[str]]:
    """([row, col] spacing or Nones, tag it came from, notes) for one dataset/item.

    Order of preference is explained in the module docstring.
    """
    notes = []
    pixel = _pair(ds.get("PixelSpacing"))
    if pixel is not None:
        return pixel, "PixelSpacing", notes
    if "PixelSpacing" in ds:
        notes.append(f"PixelSpacing {list(ds.PixelSpacing)} ignored (not positive)")
    imager = _pair(ds.get("ImagerPixelSpacing"))
    if imager is not None:
        factor = valid_spacing(ds.get("EstimatedRadiographicMagnificationFactor"))
        if factor is not None:
            return (
                [s / factor for s in imager],
                "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor",
                notes,
            )
        return imager, "ImagerPixelSpacing", notes
    return [None, None], None, notes


def _pair(value) -> list[float] | None:
    if value is None:
        return None
    try:
        values = [valid_spacing(v) for v in value]
    except TypeError:
        return None
    if len(values) != 2 or any(v is None for v in values):
        return None
    return values


def _slice_thickness(ds, n_frames: int = 1) -> tuple[float | None, str | None]:
    """Slice-axis spacing from tags, when positions cannot give it.

    A lone slice has no neighbour, so its thickness is the natural extent;
    between stacked frames SpacingBetweenSlices is the true step (slices may
    overlap or leave gaps), so it comes first there.
    """
    tags = ("SliceThickness", "SpacingBetweenSlices")
    if n_frames > 1:
        tags = tags[::-1]
    for tag in tags:
        v = valid_spacing(ds.get(tag))
        if v is not None:
            return v, tag
    return None, None


def read_dicom_file(path: str, *, spacing=None, allow_uneven_slices: bool = False) -> Image:
    """Read one DICOM file as a 2D image or 3D volume (see module docstring)."""
    path = os.fspath(path)
    dicom_warnings: list[str] = []
    with collect_pydicom_warnings(dicom_warnings):
        ds = load_dataset(path)
        frames, notes = decode_frames(ds, path)
        n_frames = frames.shape[0]
        slopes, intercepts = frame_rescale(ds, n_frames)
        values = apply_rescale(frames, slopes, intercepts)
        enhanced = (
            "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
        )
        if enhanced:
            geometry = _enhanced_geometry(ds, n_frames, path, allow_uneven_slices)
        elif n_frames > 1 or ("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds):
            geometry = classic_volume_geometry(ds, n_frames, path, allow_uneven_slices)
        else:
            geometry = None
        if geometry is None:
            file_spacing, tag, spacing_notes = inplane_spacing(ds, path)
        modality = str(ds.get("Modality")) if ds.get("Modality") else None
        sop_class = _sop_class_name(ds)
        series_uid = str(ds.get("SeriesInstanceUID", "")) or None

    meta = {
        "path": path,
        "format": "DICOM",
        "modality": modality,
        "sop_class": sop_class,
        "series_uid": series_uid,
        **notes,
    }
    if not (np.all(slopes == 1.0) and np.all(intercepts == 0.0)):
        meta["rescale"] = {"slope": slopes.tolist(), "intercept": intercepts.tolist()}

    if geometry is None:
        array = values[0]
        spacing_, source = resolve_spacing(file_spacing, spacing, path)
        meta["geometry_tags"] = {"spacing": [tag, tag], "origin": None, "direction": None}
        origin, direction = None, None
    else:
        order, file_spacing, origin, direction, tags, spacing_notes = geometry
        array = values[order]
        spacing_, source = resolve_spacing(file_spacing, spacing, path)
        meta["geometry_tags"] = tags
    meta["spacing_source"] = source
    if spacing_notes:
        meta["geometry_notes"] = spacing_notes
    if dicom_warnings:
        meta["dicom_warnings"] = dicom_warnings
    return Image(array, spacing_, origin, direction, meta)


def classic_volume_geometry(ds, n_frames: int, path: str, allow_uneven: bool):
    """Geometry of a single-frame slice or classic multi-frame file."""
    (row, col), tag, notes = inplane_spacing(ds, path)
    iop, ipp = ds.get("ImageOrientationPatient"), ds.get("ImagePositionPatient")
    direction = dicom_geometry.volume_direction(iop, path) if iop else None
    origin = dicom_geometry.parse_ipp(ipp, path) if ipp else None
    order = np.arange(n_frames)
    tags = {
        "spacing": [None, tag, tag],
        "origin": "ImagePositionPatient" if origin is not None else None,
        "direction": "ImageOrientationPatient" if direction is not None else None,
    }
    offsets = ds.get("GridFrameOffsetVector")
    if n_frames > 1 and direction is not None and origin is not None and offsets:
        try:
            offsets = np.asarray([float(v) for v in offsets])
        except (TypeError, ValueError) as e:
            raise ImageReadError(f"{path}: GridFrameOffsetVector is not numeric") from e
        if offsets.shape != (n_frames,):
            raise ImageReadError(
                f"{path}: GridFrameOffsetVector has {offsets.size} values for {n_frames} frames"
            )
        # The first offset is 0 (relative) or the first frame's own coordinate
        # (absolute); either way differences from it are steps along the normal.
        positions = origin[None, :] + (offsets - offsets[0])[:, None] * direction[:, 0][None, :]
        stack = dicom_geometry.stack_geometry(
            positions, direction, [f"frame {i + 1}" for i in range(n_frames)], path, allow_uneven
        )
        tags["spacing"][0] = "GridFrameOffsetVector"
        tags["origin"] = "ImagePositionPatient+GridFrameOffsetVector"
        return stack.order, [stack.slice_spacing, row, col], stack.origin, direction, tags, notes
    thickness, thickness_tag = _slice_thickness(ds, n_frames)
    tags["spacing"][0] = thickness_tag
    return order, [thickness, row, col], origin, direction, tags, notes


def _enhanced_geometry(ds, n_frames: int, path: str, allow_uneven: bool):
    """Geometry of an enhanced multi-frame file from its functional groups."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) != n_frames:
        raise ImageReadError(
            f"{path}: PerFrameFunctionalGroupsSequence has {len(per_frame)} items "
            f"for {n_frames} frames"
        )
    measures = functional_item(ds, 0, "PixelMeasuresSequence")
    if measures is not None:
        (row, col), tag, notes = inplane_spacing(measures, path)
        tag = tag and f"PixelMeasuresSequence.{tag}"
    else:
        (row, col), tag, notes = inplane_spacing(ds, path)

    orientations = [functional_item(ds, i, "PlaneOrientationSequence") for i in range(n_frames)]
    positions = [functional_item(ds, i, "PlanePositionSequence") for i in range(n_frames)]
    iops = [o.get("ImageOrientationPatient") if o is not None else None for o in orientations]
    ipps = [p.get("ImagePositionPatient") if p is not None else None for p in positions]

    tags = {"spacing": [None, tag, tag], "origin": None, "direction": None}
    if all(v is not None for v in iops) and all(v is not None for v in ipps):
        direction = dicom_geometry.volume_direction(iops[0], path)
        for i, iop in enumerate(iops[1:], start=2):
            if not np.allclose(dicom_geometry.volume_direction(iop, path), direction, atol=1e-3):
                raise ImageReadError(
                    f"{path}: frame {i} has orientation {list(iop)}, frame 1 has "
                    f"{list(iops[0])}; frames in several orientations are not one volume"
                )
        points = np.stack([dicom_geometry.parse_ipp(p, path) for p in ipps])
        stack = dicom_geometry.stack_geometry(
            points, direction, [f"frame {i + 1}" for i in range(n_frames)], path, allow_uneven
        )
        slice_spacing, slice_tag = stack.slice_spacing, "PlanePositionSequence.ImagePositionPatient"
        if slice_spacing is None:
            if measures is not None:
                slice_spacing, slice_tag = _slice_thickness(measures)
                slice_tag = slice_tag and f"PixelMeasuresSequence.{slice_tag}"
            else:
                slice_spacing, slice_tag = _slice_thickness(ds)
        tags.update(
            spacing=[slice_tag, tag, tag],
            origin="PlanePositionSequence.ImagePositionPatient",
            direction="PlaneOrientationSequence.ImageOrientationPatient",
        )
        return stack.order, [slice_spacing, row, col], stack.origin, direction, tags, notes
    # No per-frame positions: keep file order, as for a classic multi-frame.
    thickness, thickness_tag = _slice_thickness(measures if measures is not None else ds, n_frames)
    tags["spacing"][0] = thickness_tag
    return np.arange(n_frames), [thickness, row, col], None, None, tags, notes
