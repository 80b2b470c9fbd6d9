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

The package: `config` (landmark names and variation settings), `shapes`
(signed distance functions), `layouts` (the 2D and 3D scenes), `placement`
(pose and template -> index mapping), `rendering` (rasterising and the
intensity field) and `sample` (the public sample API).
"""

from lmk_tf.synthetic.config import LANDMARKS_2D, LANDMARKS_3D, SyntheticConfig
from lmk_tf.synthetic.sample import landmark_names, make_dataset, make_sample, sample_seed
from lmk_tf.synthetic.shapes import Box, Cone, Cut, Ellipsoid, Polygon, Rod, Shell, Union

__all__ = [
    "LANDMARKS_2D",
    "LANDMARKS_3D",
    "Box",
    "Cone",
    "Cut",
    "Ellipsoid",
    "Polygon",
    "Rod",
    "Shell",
    "SyntheticConfig",
    "Union",
    "landmark_names",
    "make_dataset",
    "make_sample",
    "sample_seed",
]
