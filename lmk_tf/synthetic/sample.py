"""The public sample API: one sample, a dataset of samples, their seeds and names."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lmk_tf.errors import ConfigError
from lmk_tf.image import Image
from lmk_tf.synthetic.config import (
    MAX_DISTRACTOR_TRIES,
    NUM_FACTORS,
    NUM_JITTER,
    REFERENCE_FOV,
    SyntheticConfig,
    available_names,
    check_count,
    check_ndim,
    default_count,
    default_shape,
    default_spacing,
)
from lmk_tf.synthetic.layouts import distractor_blobs, layout_2d, layout_3d
from lmk_tf.synthetic.placement import Transform, place_layout, rotation_matrix
from lmk_tf.synthetic.rendering import inhomogeneity_field, render


def landmark_names(ndim: int, num_landmarks: int | None = None) -> list[str]:
    """Names of the landmarks of an ndim sample (the config default count if None)."""
    available = available_names(ndim)
    if num_landmarks is None:
        num_landmarks = default_count(ndim, SyntheticConfig())
    check_count(ndim, num_landmarks)
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
    check_ndim(ndim)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative int, got {seed!r}")
    shape = tuple(int(n) for n in (shape if shape is not None else default_shape(ndim, config)))
    spacing = tuple(
        float(s) for s in (spacing if spacing is not None else default_spacing(ndim, config))
    )
    if len(shape) != ndim or any(n < 16 for n in shape):
        raise ConfigError(f"shape must be {ndim} sizes of at least 16, got {shape!r}")
    if len(spacing) != ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ConfigError(f"spacing must be {ndim} finite values > 0, got {spacing!r}")
    if num_landmarks is None:
        num_landmarks = default_count(ndim, config)
    check_count(ndim, num_landmarks)

    rng = np.random.default_rng(int(seed))
    # --- geometry: every draw below has a fixed size, see NUM_JITTER.
    angles = rng.uniform(-1.0, 1.0, size=3) * config.max_rotation_deg
    scale = rng.uniform(*config.scale_range)
    jitter_sd = config.shape_jitter_frac * REFERENCE_FOV[ndim]
    jitter = np.clip(rng.normal(0.0, 1.0, size=(NUM_JITTER, ndim)), -2.5, 2.5) * jitter_sd
    sizes = rng.uniform(0.93, 1.07, size=NUM_FACTORS)
    intensities = rng.uniform(0.85, 1.15, size=NUM_FACTORS)
    u_placement = rng.random(3 + ndim)
    u_distractors = rng.random((config.num_distractors[1], MAX_DISTRACTOR_TRIES + 4, ndim))
    num_distractors = int(rng.integers(config.num_distractors[0], config.num_distractors[1] + 1))
    edge_px = rng.uniform(*config.edge_px)
    inhomogeneity = rng.uniform(-1.0, 1.0, size=2 * ndim + 1) * config.inhomogeneity
    gain = 1.0 + rng.uniform(-1.0, 1.0) * config.contrast_jitter
    offset = rng.uniform(-1.0, 1.0) * config.brightness_jitter
    noise_sigma = rng.uniform(*config.noise_sigma)

    builder = layout_2d if ndim == 2 else layout_3d
    layers, all_points = builder(iter(jitter), sizes, intensities)
    points_template = np.array([all_points[name] for name in available_names(ndim)[:num_landmarks]])

    shape_arr = np.asarray(shape, np.float64)
    spacing_arr = np.asarray(spacing, np.float64)
    fov = shape_arr * spacing_arr
    fov_scale = float(fov.min()) / REFERENCE_FOV[ndim]
    rotation = rotation_matrix(ndim, angles)
    matrix = rotation * (scale * fov_scale)
    untranslated = points_template @ matrix.T
    translation, outside = place_layout(untranslated, fov, config, u_placement)
    xf = Transform(matrix, translation, (shape_arr - 1.0) / 2.0, spacing_arr, scale * fov_scale)
    points_index = xf.to_index(points_template)

    distractors = distractor_blobs(
        ndim, u_distractors[:num_distractors], np.array(list(all_points.values()))
    )
    image = np.zeros(shape, np.float32)
    additive = ndim == 2  # X-ray: attenuations add; CT: each voxel one tissue
    # Distractors go right after the body (first two layers), so that in 3D
    # they show inside it but never cover a landmark-bearing structure.
    for shp, value in layers[:2] + distractors + layers[2:]:
        render(image, shp, value, xf, edge_px, additive)

    image *= inhomogeneity_field(shape, inhomogeneity)
    image = image * np.float32(gain) + np.float32(offset)
    image += rng.standard_normal(size=shape, dtype=np.float32) * np.float32(noise_sigma)
    np.clip(image, *config.intensity_clip, out=image)

    names = list(available_names(ndim)[:num_landmarks])
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

