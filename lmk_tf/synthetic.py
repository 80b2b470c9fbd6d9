"""Seeded synthetic 2D and 3D images with exactly known landmarks.

The generator exists so that the whole package (input pipelines, models,
export, serving, evaluation) can be trained and tested in seconds without real
data, on a problem that is still hard enough to tell a working landmark
detector from a broken one.

How a sample is made:

* A fixed *layout* of simple 'anatomical' structures is written in a template
  frame (mm, array-axis order, centred on 0, sized for a reference field of
  view of 256 mm in 2D and 96 mm in 3D). Each structure is a signed distance
  function (SDF). Landmarks are points of that layout: polygon corners, cone
  apices, rod ends and the centres of small blobs.
* Per sample, the template points are jittered (shape variation), then the
  whole layout is rotated (about +-15 degrees, about every axis in 3D), scaled
  (0.85-1.15) and translated. The landmarks go through exactly the same
  transform, so the ground truth is exact, not detected.
* Each pixel centre is mapped back to the template and the SDF turned into a
  partial-volume coverage with a compact smooth edge whose 0.5 level is the
  structure's boundary. A landmark on a corner therefore sits exactly on the
  rendered corner, with sub-pixel precision.
* Then: distractor blobs away from the landmarks, a smooth multiplicative
  inhomogeneity, random contrast and brightness, Gaussian noise, clipping to
  [0, 1000] (float32, like raw X-ray/CT values, not normalised).
* With probability `p_outside` the field of view is shifted so that exactly
  one landmark lies outside the image; its true (outside) index is still
  returned, so callers see that it is absent with `Image.contains_index`.

Conventions are those of `lmk_tf.image`: index i covers [i - 0.5, i + 0.5];
the physical position of index i, relative to the image centre, is
(i - (n - 1) / 2) * spacing.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np

from lmk_tf.errors import ConfigError
from lmk_tf.image import Image

# Landmark names in the order they are returned; a sample with L landmarks
# has the first L. The most robust landmarks come first.
LANDMARKS_2D = (
    "sella",  # centre of a small bony ring on the skull base
    "nasal_tip",  # apex of the nasal-bone wedge
    "porion",  # centre of the round ear-rod blob
    "incisor_tip",  # apex of the upper incisor wedge
    "menton",  # lowest front corner of the mandible
    "gonion",  # jaw angle, back lower corner of the mandible
    "condylion",  # top corner of the mandibular condyle
    "orbit",  # centre of the elliptic orbit ring
)
LANDMARKS_3D = (
    "cone_apex",  # tip of the cone
    "rod_end",  # centre of the free end face of the rod
    "box_corner",  # one corner of the bone block
    "blob_centre",  # centre of the small bright sphere
    "foramen_centre",  # centre of the dark hole in the bone block
)

# The template layout is drawn for these fields of view (mm); other image
# sizes scale the layout to fit their smallest physical extent.
_REFERENCE_FOV = {2: 256.0, 3: 96.0}
# Jitter draws, size factors and intensity factors are drawn in fixed numbers
# so that the random stream (and so the sample) never depends on how many of
# them a layout happens to use.
_NUM_JITTER = 64
_NUM_FACTORS = 16
_MAX_DISTRACTOR_TRIES = 12


@dataclasses.dataclass
class SyntheticConfig:
    """How synthetic samples vary. Defaults give a realistic, fairly hard task.

    Attributes:
      shape_2d: image shape (rows, cols) of a 2D sample.
      spacing_2d: mm per pixel (rows, cols) of a 2D sample.
      num_landmarks_2d: landmarks per 2D sample (at most len(LANDMARKS_2D) = 8).
      shape_3d: image shape (slices, rows, cols) of a 3D sample.
      spacing_3d: mm per voxel of a 3D sample.
      num_landmarks_3d: landmarks per 3D sample (at most len(LANDMARKS_3D) = 5).
      max_rotation_deg: rotation drawn uniformly in +-this, about each axis in 3D;
        kept moderate so no landmark can be confused with another.
      scale_range: isotropic scale factor drawn uniformly from this range.
      max_translation_frac: shift of the layout, fraction of the field of view,
        per axis (then limited so that all landmarks stay inside).
      inside_margin_frac: landmarks that are meant to be visible stay at least
        this fraction of the field of view away from the image border.
      shape_jitter_frac: standard deviation of the independent jitter of every
        template point (vertices, centres), fraction of the reference field of
        view; makes the relative landmark positions vary, not only the pose.
      p_outside: probability that the field of view is shifted so that exactly
        one landmark lies outside the image.
      outside_margin_frac: (min, max) distance beyond the border, fraction of
        the field of view, of the landmark pushed outside.
      edge_px: (min, max) half-width in pixels of the smooth partial-volume edge.
      inhomogeneity: largest amplitude of the smooth multiplicative field
        (1 + quadratic polynomial, so 0.25 means roughly a 0.75-1.25 gain).
      contrast_jitter: global gain drawn from 1 +- this.
      brightness_jitter: global offset drawn from +- this (intensity units).
      noise_sigma: (min, max) standard deviation of the additive Gaussian noise.
      num_distractors: (min, max) number of random blobs placed away from the
        landmarks, so that blob-like landmarks must be found by context.
      intensity_clip: (low, high) final clipping of the intensities.
    """

    shape_2d: tuple[int, int] = (256, 256)
    spacing_2d: tuple[float, float] = (1.0, 1.0)
    num_landmarks_2d: int = 6
    shape_3d: tuple[int, int, int] = (64, 64, 64)
    spacing_3d: tuple[float, float, float] = (1.5, 1.5, 1.5)
    num_landmarks_3d: int = 5
    max_rotation_deg: float = 15.0
    scale_range: tuple[float, float] = (0.85, 1.15)
    max_translation_frac: float = 0.08
    inside_margin_frac: float = 0.04
    shape_jitter_frac: float = 0.01
    p_outside: float = 0.15
    outside_margin_frac: tuple[float, float] = (0.01, 0.06)
    edge_px: tuple[float, float] = (0.5, 1.2)
    inhomogeneity: float = 0.25
    contrast_jitter: float = 0.2
    brightness_jitter: float = 50.0
    noise_sigma: tuple[float, float] = (5.0, 25.0)
    num_distractors: tuple[int, int] = (2, 5)
    intensity_clip: tuple[float, float] = (0.0, 1000.0)

    def __post_init__(self):
        def check_range(name, value, low=0.0, high=math.inf):
            lo, hi = value
            if not (low <= lo <= hi <= high):
                raise ConfigError(
                    f"SyntheticConfig.{name} must be (min, max) with "
                    f"{low} <= min <= max <= {high}, got {value!r}"
                )

        if not 0.0 <= self.max_rotation_deg <= 45.0:
            # Beyond ~45 degrees the layout is no longer unambiguous.
            raise ConfigError(
                f"SyntheticConfig.max_rotation_deg must be in [0, 45], got {self.max_rotation_deg!r}"
            )
        check_range("scale_range", self.scale_range, 0.1, 10.0)
        if self.scale_range[0] <= 0:
            raise ConfigError(f"SyntheticConfig.scale_range must be > 0, got {self.scale_range!r}")
        for name in ("max_translation_frac", "inside_margin_frac", "shape_jitter_frac"):
            value = getattr(self, name)
            if not 0.0 <= value <= 0.5:
                raise ConfigError(f"SyntheticConfig.{name} must be in [0, 0.5], got {value!r}")
        if not 0.0 <= self.p_outside <= 1.0:
            raise ConfigError(f"SyntheticConfig.p_outside must be in [0, 1], got {self.p_outside!r}")
        check_range("outside_margin_frac", self.outside_margin_frac, 0.0, 0.5)
        check_range("edge_px", self.edge_px, 0.05, 10.0)
        check_range("noise_sigma", self.noise_sigma)
        check_range("num_distractors", self.num_distractors, 0, 20)
        check_range("intensity_clip", self.intensity_clip, -math.inf, math.inf)
        for name in ("inhomogeneity", "contrast_jitter"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"SyntheticConfig.{name} must be in [0, 1), got {value!r}")
        if self.brightness_jitter < 0:
            raise ConfigError(
                f"SyntheticConfig.brightness_jitter must be >= 0, got {self.brightness_jitter!r}"
            )


def landmark_names(ndim: int, num_landmarks: int | None = None) -> list[str]:
    """Names of the landmarks of an ndim sample (the config default count if None)."""
    available = _available_names(ndim)
    if num_landmarks is None:
        num_landmarks = _default_count(ndim, SyntheticConfig())
    _check_count(ndim, num_landmarks)
    return list(available[:num_landmarks])


def make_sample(
    ndim: int,
    seed: int,
    *,
    shape: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
    num_landmarks: int | None = None,
    config: SyntheticConfig | None = None,
) -> tuple[Image, np.ndarray, list[str]]:
    """One synthetic image with its landmarks.

    Args:
      ndim: 2 or 3.
      seed: any non-negative int; the same arguments give byte-identical output.
      shape, spacing, num_landmarks: override the config's values for ndim.
      config: variation settings; `SyntheticConfig()` if None.

    Returns:
      (image, points_index, names): a float32 `Image` (origin 0, identity
      direction, `meta['synthetic']` records the drawn parameters); the
      landmarks as float64 [L, ndim] continuous indices in array-axis order,
      which may lie outside the image; and their L names.
    """
    config = SyntheticConfig() if config is None else config
    _check_ndim(ndim)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative int, got {seed!r}")
    shape = tuple(int(n) for n in (shape if shape is not None else _default_shape(ndim, config)))
    spacing = tuple(
        float(s) for s in (spacing if spacing is not None else _default_spacing(ndim, config))
    )
    if len(shape) != ndim or any(n < 16 for n in shape):
        raise ConfigError(f"shape must be {ndim} sizes of at least 16, got {shape!r}")
    if len(spacing) != ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ConfigError(f"spacing must be {ndim} finite values > 0, got {spacing!r}")
    if num_landmarks is None:
        num_landmarks = _default_count(ndim, config)
    _check_count(ndim, num_landmarks)

    rng = np.random.default_rng(int(seed))
    # --- geometry: every draw below has a fixed size, see _NUM_JITTER.
    angles = rng.uniform(-1.0, 1.0, size=3) * config.max_rotation_deg
    scale = rng.uniform(*config.scale_range)
    jitter_sd = config.shape_jitter_frac * _REFERENCE_FOV[ndim]
    jitter = np.clip(rng.normal(0.0, 1.0, size=(_NUM_JITTER, ndim)), -2.5, 2.5) * jitter_sd
    sizes = rng.uniform(0.93, 1.07, size=_NUM_FACTORS)
    intensities = rng.uniform(0.85, 1.15, size=_NUM_FACTORS)
    u_placement = rng.random(3 + ndim)
    u_distractors = rng.random((config.num_distractors[1], _MAX_DISTRACTOR_TRIES + 4, ndim))
    num_distractors = int(rng.integers(config.num_distractors[0], config.num_distractors[1] + 1))
    edge_px = rng.uniform(*config.edge_px)
    inhomogeneity = rng.uniform(-1.0, 1.0, size=2 * ndim + 1) * config.inhomogeneity
    gain = 1.0 + rng.uniform(-1.0, 1.0) * config.contrast_jitter
    offset = rng.uniform(-1.0, 1.0) * config.brightness_jitter
    noise_sigma = rng.uniform(*config.noise_sigma)

    builder = _layout_2d if ndim == 2 else _layout_3d
    layers, all_points = builder(iter(jitter), sizes, intensities)
    points_template = np.array([all_points[name] for name in _available_names(ndim)[:num_landmarks]])

    shape_arr = np.asarray(shape, np.float64)
    spacing_arr = np.asarray(spacing, np.float64)
    fov = shape_arr * spacing_arr
    fov_scale = float(fov.min()) / _REFERENCE_FOV[ndim]
    rotation = _rotation(ndim, angles)
    matrix = rotation * (scale * fov_scale)
    untranslated = points_template @ matrix.T
    translation, outside = _place(untranslated, fov, config, u_placement)
    xf = _Transform(matrix, translation, (shape_arr - 1.0) / 2.0, spacing_arr, scale * fov_scale)
    points_index = xf.to_index(points_template)

    distractors = _distractors(
        ndim, u_distractors[:num_distractors], np.array(list(all_points.values()))
    )
    image = np.zeros(shape, np.float32)
    additive = ndim == 2  # X-ray: attenuations add; CT: each voxel one tissue
    # Distractors go right after the body (first two layers), so that in 3D
    # they show inside it but never cover a landmark-bearing structure.
    for shp, value in layers[:2] + distractors + layers[2:]:
        _render(image, shp, value, xf, edge_px, additive)

    image *= _inhomogeneity_field(shape, inhomogeneity)
    image = image * np.float32(gain) + np.float32(offset)
    image += rng.standard_normal(size=shape, dtype=np.float32) * np.float32(noise_sigma)
    np.clip(image, *config.intensity_clip, out=image)

    names = list(_available_names(ndim)[:num_landmarks])
    meta = {
        "source": "synthetic",
        "synthetic": {
            "seed": int(seed),
            "rotation_deg": [float(a) for a in angles[: 1 if ndim == 2 else 3]],
            "scale": float(scale),
            "translation_mm": [float(t) for t in translation],
            "outside_landmark": None if outside is None else names[outside],
            "edge_px": float(edge_px),
            "noise_sigma": float(noise_sigma),
            "num_distractors": num_distractors,
        },
    }
    return Image(image, spacing, meta=meta), points_index, names


def make_dataset(
    ndim: int,
    n: int,
    seed: int,
    *,
    shape: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
    num_landmarks: int | None = None,
    config: SyntheticConfig | None = None,
) -> list[tuple[Image, np.ndarray, list[str]]]:
    """n samples; sample i is `make_sample(ndim, sample_seed(seed, i), ...)`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"n must be a non-negative int, got {n!r}")
    return [
        make_sample(
            ndim,
            sample_seed(seed, i),
            shape=shape,
            spacing=spacing,
            num_landmarks=num_landmarks,
            config=config,
        )
        for i in range(n)
    ]


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample `index` of dataset `seed` (independent streams)."""
    if seed < 0 or index < 0:
        raise ConfigError(f"seed and index must be >= 0, got seed={seed!r}, index={index!r}")
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


# --------------------------------------------------------------------------
# Signed distance functions. Template coordinates q are a list of ndim arrays
# (broadcastable), in mm; negative inside. Only the zero level set needs to be
# exact (it is), the distances near it only need to be close, because they set
# the width of the soft edge.


@dataclasses.dataclass(frozen=True)
class Ellipsoid:
    """Solid ellipse/ellipsoid; exact for circles/spheres."""

    centre: np.ndarray
    semi_axes: np.ndarray

    def sdf(self, q):
        d = [qk - float(c) for qk, c in zip(q, self.centre)]
        k0 = np.sqrt(sum((dk / float(a)) ** 2 for dk, a in zip(d, self.semi_axes)))
        k1 = np.sqrt(sum((dk / float(a) ** 2) ** 2 for dk, a in zip(d, self.semi_axes)))
        # First-order distance k0 (k0 - 1) / k1 (|grad| normalised); at the
        # centre k1 = 0 and the distance is minus the smallest semi-axis.
        return np.where(
            k1 > 1e-6, k0 * (k0 - 1.0) / np.maximum(k1, 1e-6), -float(np.min(self.semi_axes))
        )

    def bounds(self):
        return self.centre - self.semi_axes, self.centre + self.semi_axes


@dataclasses.dataclass(frozen=True)
class Shell:
    """Ellipse ring / ellipsoid shell of a given thickness (inward)."""

    centre: np.ndarray
    semi_axes: np.ndarray
    thickness: float

    def sdf(self, q):
        outer = Ellipsoid(self.centre, self.semi_axes).sdf(q)
        inner = Ellipsoid(self.centre, self.semi_axes - self.thickness).sdf(q)
        return np.maximum(outer, -inner)

    def bounds(self):
        return self.centre - self.semi_axes, self.centre + self.semi_axes


@dataclasses.dataclass(frozen=True)
class Polygon:
    """Simple (possibly non-convex) 2D polygon; exact distance."""

    vertices: np.ndarray  # [V, 2], array-axis order (row, col)

    def sdf(self, q):
        r, c = q
        v = self.vertices
        d2 = (r - float(v[0, 0])) ** 2 + (c - float(v[0, 1])) ** 2
        inside = np.zeros((), bool)
        for i in range(len(v)):
            j = i - 1
            vr, vc = float(v[i, 0]), float(v[i, 1])
            er, ec = float(v[j, 0]) - vr, float(v[j, 1]) - vc
            wr, wc = r - vr, c - vc
            t = np.clip((wr * er + wc * ec) / (er * er + ec * ec), 0.0, 1.0)
            br, bc = wr - er * t, wc - ec * t
            d2 = np.minimum(d2, br * br + bc * bc)
            # Crossing-number parity along the column axis for the sign.
            c1 = r >= vr
            c2 = r < float(v[j, 0])
            c3 = ec * wr > er * wc
            inside = inside ^ ((c1 & c2 & c3) | (~c1 & ~c2 & ~c3))
        return np.where(inside, -1.0, 1.0) * np.sqrt(d2)

    def bounds(self):
        return self.vertices.min(axis=0), self.vertices.max(axis=0)


@dataclasses.dataclass(frozen=True)
class Box:
    """Axis-aligned (in the template) box with sharp corners; exact distance."""

    centre: np.ndarray
    half: np.ndarray

    def sdf(self, q):
        d = [np.abs(qk - float(c)) - float(h) for qk, c, h in zip(q, self.centre, self.half)]
        outside = np.sqrt(sum(np.maximum(dk, 0.0) ** 2 for dk in d))
        inside = d[0]
        for dk in d[1:]:
            inside = np.maximum(inside, dk)
        return outside + np.minimum(inside, 0.0)

    def bounds(self):
        return self.centre - self.half, self.centre + self.half


def _axial(q, start, end):
    """Axial coordinate h along start->end, radial distance r, and length."""
    axis = end - start
    length = float(np.linalg.norm(axis))
    u = axis / length
    d = [qk - float(s) for qk, s in zip(q, start)]
    h = sum(dk * float(uk) for dk, uk in zip(d, u))
    r2 = sum(dk * dk for dk in d) - h * h
    return h, np.sqrt(np.maximum(r2, 0.0)), length


@dataclasses.dataclass(frozen=True)
class Cone:
    """Solid cone from a sharp apex to a flat base disc."""

    apex: np.ndarray
    base: np.ndarray
    radius: float

    def sdf(self, q):
        h, r, length = _axial(q, self.apex, self.base)
        hyp = math.hypot(length, self.radius)
        cos_t, sin_t = length / hyp, self.radius / hyp
        lateral = r * cos_t - h * sin_t
        # Points 'behind' the apex are nearest to the apex itself.
        behind = h * cos_t + r * sin_t < 0
        lateral = np.where(behind, np.sqrt(h * h + r * r), lateral)
        return np.maximum(lateral, h - length)

    def bounds(self):
        pad = self.radius
        lo = np.minimum(self.apex, self.base - pad)
        hi = np.maximum(self.apex, self.base + pad)
        return lo, hi


@dataclasses.dataclass(frozen=True)
class Rod:
    """Solid cylinder with flat ends."""

    start: np.ndarray
    end: np.ndarray
    radius: float

    def sdf(self, q):
        h, r, length = _axial(q, self.start, self.end)
        return np.maximum(r - self.radius, np.maximum(-h, h - length))

    def bounds(self):
        pad = self.radius
        return np.minimum(self.start, self.end) - pad, np.maximum(self.start, self.end) + pad


@dataclasses.dataclass(frozen=True)
class Union:
    parts: tuple

    def sdf(self, q):
        out = self.parts[0].sdf(q)
        for part in self.parts[1:]:
            out = np.minimum(out, part.sdf(q))
        return out

    def bounds(self):
        los, his = zip(*(p.bounds() for p in self.parts))
        return np.min(los, axis=0), np.max(his, axis=0)


@dataclasses.dataclass(frozen=True)
class Cut:
    """`shape` restricted to the half-space q[axis] <= limit."""

    shape: object
    axis: int
    limit: float

    def sdf(self, q):
        return np.maximum(self.shape.sdf(q), q[self.axis] - self.limit)

    def bounds(self):
        lo, hi = self.shape.bounds()
        hi = hi.copy()
        hi[self.axis] = min(hi[self.axis], self.limit)
        return lo, hi


# --------------------------------------------------------------------------
# Layouts: (list of (shape, intensity) in drawing order, {name: template point}).


def _layout_2d(jitter, size, inten):
    """A cartoon lateral cephalogram, face to the right (+col), rows down."""

    def p(r, c):
        return np.array([r, c], np.float64) + next(jitter)

    def poly(*points):
        return Polygon(np.array(points))

    sella, nasal, porion, incisor = p(-24, -8), p(2, 92), p(-2, -74), p(52, 78)
    menton, gonion, condylion, orbit = p(100, 58), p(70, -48), p(-12, -46), p(-20, 50)
    points = {
        "sella": sella,
        "nasal_tip": nasal,
        "porion": porion,
        "incisor_tip": incisor,
        "menton": menton,
        "gonion": gonion,
        "condylion": condylion,
        "orbit": orbit,
    }
    soft = Union(
        (
            Ellipsoid(p(-18, -8), np.array([104.0, 100.0]) * size[0]),
            Ellipsoid(p(40, 52), np.array([84.0, 62.0]) * size[1]),
        )
    )
    cranium = Cut(Shell(p(-46, -10), np.array([72.0, 92.0]) * size[2], 7.0 * size[3]), 0, -18.0)
    skull_base = poly(p(-14, -88), p(-34, 36), p(-24, 40), p(-2, -80))
    sella_ring = Shell(sella, np.array([6.5, 6.5]) * size[4], 2.5)
    orbit_ring = Shell(orbit, np.array([13.0, 10.0]) * size[5], 2.0)
    nasal_bone = poly(p(-50, 62), nasal, p(-30, 66))
    maxilla = poly(p(8, -10), p(4, 62), p(20, 72), p(28, -2))
    upper_incisor = poly(p(16, 56), incisor, p(24, 70))
    upper_molars = [poly(p(22, c), p(38, c + 2), p(38, c + 14), p(22, c + 16)) for c in (8, 28)]
    lower_molars = [poly(p(40, c), p(54, c), p(52, c + 14), p(40, c + 14)) for c in (18, 36)]
    mandible = poly(
        condylion,
        p(-2, -36),
        p(18, -24),
        p(48, 16),
        p(54, 58),
        p(80, 72),
        menton,
        gonion,
        p(-2, -58),
    )
    ear_rod = Ellipsoid(porion, np.array([5.0, 5.0]) * size[6])
    layers = [
        (soft, 170 * inten[0]),
        (cranium, 260 * inten[1]),
        (skull_base, 140 * inten[2]),
        (sella_ring, 200 * inten[3]),
        (orbit_ring, 130 * inten[4]),
        (nasal_bone, 240 * inten[5]),
        (maxilla, 170 * inten[6]),
        (upper_incisor, 300 * inten[7]),
        *[(m, 230 * inten[8]) for m in upper_molars + lower_molars],
        (mandible, 260 * inten[9]),
        (ear_rod, 330 * inten[10]),
    ]
    return layers, points


def _layout_3d(jitter, size, inten):
    """A block of bone with a hole, a cone, a rod and a blob in soft tissue."""

    def p(z, y, x):
        return np.array([z, y, x], np.float64) + next(jitter)

    # Landmarks stay >= 10 mm inside the body wall and away from each other's structures.
    box_centre = p(0, 8, -8)
    half = np.array([14.0, 10.0, 12.0]) * size[0:3]
    corner = box_centre + np.array([-1.0, -1.0, 1.0]) * half
    cone_apex, cone_base = p(-12, -20, 22), p(12, -12, 16)
    rod_start, rod_end = p(4, 10, -8), p(26, 16, 2)
    blob, foramen = p(-16, -14, -18), box_centre + np.array([3.0, 1.0, 2.0]) + next(jitter) * 0.3
    points = {
        "cone_apex": cone_apex,
        "rod_end": rod_end,
        "box_corner": corner,
        "blob_centre": blob,
        "foramen_centre": foramen,
    }
    layers = [
        (Ellipsoid(p(0, 0, 0), np.array([42.0, 38.0, 44.0]) * size[3:6]), 300 * inten[0]),
        (Shell(np.zeros(3), np.array([46.0, 42.0, 48.0]) * size[6], 2.5), 600 * inten[1]),
        (Rod(rod_start, rod_end, 2.6 * size[7]), 780 * inten[2]),
        (Box(box_centre, half), 700 * inten[3]),
        (Box(box_centre, half - 3.0), 430 * inten[4]),
        (Ellipsoid(foramen, np.array([3.5, 3.5, 3.5]) * size[8]), 120 * inten[5]),
        (Cone(cone_apex, cone_base, 7.0 * size[9]), 600 * inten[6]),
        (Ellipsoid(blob, np.array([3.0, 3.0, 3.0]) * size[10]), 820 * inten[7]),
    ]
    return layers, points


def _distractors(ndim, draws, landmark_points):
    """Random soft blobs at least a blob radius + margin from every landmark."""
    fov = _REFERENCE_FOV[ndim]
    shapes = []
    for tries in draws:
        # The first rows of `tries` are candidate centres, the last give size,
        # elongation and intensity.
        radius = fov * (0.02 + 0.05 * tries[-1, 0])
        semi = radius * (0.6 + 0.8 * tries[-2])
        value = 60.0 + 160.0 * tries[-3, 0]
        if ndim == 2 and tries[-4, 0] < 0.3:
            value *= -0.5  # X-ray: some blobs are less dense than their surroundings
        for candidate in tries[:_MAX_DISTRACTOR_TRIES]:
            centre = (candidate - 0.5) * fov * 0.8
            distance = np.linalg.norm(landmark_points - centre, axis=1).min()
            if distance > semi.max() + 0.04 * fov:
                shapes.append((Ellipsoid(centre, semi), value))
                break
    return shapes


# --------------------------------------------------------------------------
# Geometry and rendering.


@dataclasses.dataclass
class _Transform:
    """Template mm -> continuous index: centre + (matrix @ q + translation) / spacing."""

    matrix: np.ndarray
    translation: np.ndarray
    centre_index: np.ndarray
    spacing: np.ndarray
    scale: float  # template mm -> physical mm (the matrix is scale * rotation)

    def to_index(self, q):
        q = np.asarray(q, np.float64)
        return self.centre_index + (q @ self.matrix.T + self.translation) / self.spacing

    def template_grid(self, start, stop):
        """Template coordinates of the pixel centres in [start, stop) (broadcastable)."""
        ndim = len(start)
        inverse = np.linalg.inv(self.matrix)
        axes = []
        for a in range(ndim):
            idx = np.arange(start[a], stop[a], dtype=np.float64)
            mm = (idx - self.centre_index[a]) * self.spacing[a] - self.translation[a]
            view = [1] * ndim
            view[a] = -1
            axes.append(mm.astype(np.float32).reshape(view))
        # float32 keeps 1e-5 mm precision here and halves the memory traffic.
        return [sum(axes[a] * float(inverse[k, a]) for a in range(ndim)) for k in range(ndim)]


def _rotation(ndim, angles_deg):
    a = np.deg2rad(angles_deg)
    if ndim == 2:
        c, s = math.cos(a[0]), math.sin(a[0])
        return np.array([[c, -s], [s, c]])
    rotations = []
    for axis, angle in enumerate(a):
        c, s = math.cos(angle), math.sin(angle)
        i, j = [k for k in range(3) if k != axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        rotations.append(m)
    return rotations[0] @ rotations[1] @ rotations[2]


def _interval(positions, half_fov, margin):
    """Translations t keeping all positions in [-half_fov + margin, half_fov - margin]."""
    if len(positions) == 0:
        return -math.inf, math.inf
    return -half_fov + margin - positions.min(), half_fov - margin - positions.max()


def _place(points_mm, fov, config, u):
    """Translation (mm) of the layout, and the index of the landmark put outside."""
    ndim = points_mm.shape[1]
    half = fov / 2.0  # the pixel grid covers [-half, half] around the centre
    u_out, u_margin, u_choice, u_axes = u[0], u[1], u[2], u[3:]

    def inside_translation(points):
        t = np.zeros(ndim)
        for a in range(ndim):
            lo, hi = _interval(points[:, a], half[a], config.inside_margin_frac * fov[a])
            limit = config.max_translation_frac * fov[a]
            if lo > hi:  # the layout is larger than the image: centre it
                lo = hi = (lo + hi) / 2.0
            elif lo > limit:  # keeping the landmarks inside needs more shift than allowed
                hi = lo
            elif hi < -limit:
                lo = hi
            else:
                lo, hi = max(lo, -limit), min(hi, limit)
            t[a] = lo + u_axes[a] * (hi - lo)
        return t

    if u_out < config.p_outside and len(points_mm) > 0:
        lo_frac, hi_frac = config.outside_margin_frac
        frac = lo_frac + u_margin * (hi_frac - lo_frac)
        candidates = []
        for l, a, side in itertools.product(range(len(points_mm)), range(ndim), (-1.0, 1.0)):
            others = np.delete(points_mm, l, axis=0)
            # Others keep a small margin only: a crop is allowed to come close.
            lo, hi = _interval(others[:, a], half[a], 0.015 * fov[a])
            t = side * (half[a] + frac * fov[a]) - points_mm[l, a]
            if lo <= t <= hi:
                candidates.append((l, a, t))
        if candidates:
            l, a, t_a = candidates[min(int(u_choice * len(candidates)), len(candidates) - 1)]
            t = inside_translation(np.delete(points_mm, l, axis=0))
            t[a] = t_a
            return t, l
    return inside_translation(points_mm), None


def _coverage(d, width):
    """Smooth partial-volume coverage: 1 inside, 0 outside, exactly 0.5 on the boundary.

    A smoothstep over [-width, width] rather than a sigmoid, so that the
    support is compact and structures can be rendered in their bounding box.
    """
    t = np.clip(0.5 - d * (0.5 / width), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _render(image, shape, value, xf, edge_px, additive):
    """Draw one structure into `image` in place, only within its bounding box."""
    lo, hi = shape.bounds()
    corners = np.array(list(itertools.product(*zip(lo, hi))))
    idx = xf.to_index(corners)
    # The edge reaches edge_px pixels (in the finest axis) beyond the boundary.
    margin = edge_px + 1.0
    start = np.maximum(np.floor(idx.min(axis=0) - margin), 0).astype(int)
    stop = np.minimum(np.ceil(idx.max(axis=0) + margin) + 1, image.shape).astype(int)
    if np.any(stop <= start):
        return
    q = xf.template_grid(start, stop)
    width = edge_px * float(xf.spacing.min()) / xf.scale  # template mm
    c = _coverage(shape.sdf(q), width).astype(np.float32)
    region = image[tuple(slice(s, e) for s, e in zip(start, stop))]
    c = np.broadcast_to(c, region.shape)
    if additive:
        region += np.float32(value) * c
    else:
        region += c * (np.float32(value) - region)


def _inhomogeneity_field(shape, coeffs):
    """1 + linear + quadratic terms over [-1, 1] per axis, clipped to [0.5, 1.5]."""
    ndim = len(shape)
    axes = []
    for a, n in enumerate(shape):
        view = [1] * ndim
        view[a] = -1
        axes.append(np.linspace(-1.0, 1.0, n, dtype=np.float32).reshape(view))
    field = np.float32(1.0)
    for a in range(ndim):
        field = field + float(coeffs[a]) * axes[a] + float(coeffs[ndim + a]) * (axes[a] ** 2 - 0.33)
    field = field + float(coeffs[-1]) * axes[0] * axes[1]
    return np.clip(np.broadcast_to(field, shape), 0.5, 1.5).astype(np.float32)


# --------------------------------------------------------------------------
# Argument helpers.


def _check_ndim(ndim):
    if ndim not in (2, 3):
        raise ConfigError(f"ndim must be 2 or 3, got {ndim!r}")


def _available_names(ndim):
    _check_ndim(ndim)
    return LANDMARKS_2D if ndim == 2 else LANDMARKS_3D


def _check_count(ndim, num_landmarks):
    available = _available_names(ndim)
    if (
        isinstance(num_landmarks, bool)
        or not isinstance(num_landmarks, (int, np.integer))
        or not 1 <= num_landmarks <= len(available)
    ):
        raise ConfigError(
            f"num_landmarks for {ndim}D must be an int in [1, {len(available)}], got {num_landmarks!r}"
        )


def _default_shape(ndim, config):
    return config.shape_2d if ndim == 2 else config.shape_3d


def _default_spacing(ndim, config):
    return config.spacing_2d if ndim == 2 else config.spacing_3d


def _default_count(ndim, config):
    return config.num_landmarks_2d if ndim == 2 else config.num_landmarks_3d

