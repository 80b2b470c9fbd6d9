"""What synthetic samples look like: the landmark names and the variation settings."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from lmk_tf.errors import ConfigError

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
REFERENCE_FOV = {2: 256.0, 3: 96.0}
# Jitter draws, size factors and intensity factors are drawn in fixed numbers
# so that the random stream (and so the sample) never depends on how many of
# them a layout happens to use.
NUM_JITTER = 64
NUM_FACTORS = 16
MAX_DISTRACTOR_TRIES = 12


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


# Argument checks and per-ndim defaults shared by the sample API.


def check_ndim(ndim):
    """ConfigError unless ndim is 2 or 3."""
    if ndim not in (2, 3):
        raise ConfigError(f"ndim must be 2 or 3, got {ndim!r}")


def available_names(ndim):
    """All landmark names of an ndim sample, most robust first."""
    check_ndim(ndim)
    return LANDMARKS_2D if ndim == 2 else LANDMARKS_3D


def check_count(ndim, num_landmarks):
    """ConfigError unless num_landmarks is an int in [1, number available]."""
    available = available_names(ndim)
    if (
        isinstance(num_landmarks, bool)
        or not isinstance(num_landmarks, (int, np.integer))
        or not 1 <= num_landmarks <= len(available)
    ):
        raise ConfigError(
            f"num_landmarks for {ndim}D must be an int in [1, {len(available)}], got {num_landmarks!r}"
        )


def default_shape(ndim, config):
    return config.shape_2d if ndim == 2 else config.shape_3d


def default_spacing(ndim, config):
    return config.spacing_2d if ndim == 2 else config.spacing_3d


def default_count(ndim, config):
    return config.num_landmarks_2d if ndim == 2 else config.num_landmarks_3d

