"""Settings shared by the synthetic generator's tests."""

from lmk_tf import synthetic

# Everything that is not geometry switched off, so that images can be measured.
CLEAN = synthetic.SyntheticConfig(
    noise_sigma=(0.0, 0.0),
    inhomogeneity=0.0,
    contrast_jitter=0.0,
    brightness_jitter=0.0,
    num_distractors=(0, 0),
    p_outside=0.0,
)
