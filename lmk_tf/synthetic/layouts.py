"""The scenes: the template layouts of 2D and 3D samples, and the distractor blobs.

A layout is (list of (shape, intensity) in drawing order, {name: template
point}), in template mm, array-axis order, centred on 0.
"""

from __future__ import annotations

import numpy as np

from lmk_tf.synthetic.config import MAX_DISTRACTOR_TRIES, REFERENCE_FOV
from lmk_tf.synthetic.shapes import Box, Cone, Cut, Ellipsoid, Polygon, Rod, Shell, Union


def layout_2d(jitter, size, inten):
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


def layout_3d(jitter, size, inten):
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


def distractor_blobs(ndim, draws, landmark_points):
    """Random soft blobs at least a blob radius + margin from every landmark."""
    fov = REFERENCE_FOV[ndim]
    shapes = []
    for tries in draws:
        # The first rows of `tries` are candidate centres, the last give size,
        # elongation and intensity.
        radius = fov * (0.02 + 0.05 * tries[-1, 0])
        semi = radius * (0.6 + 0.8 * tries[-2])
        value = 60.0 + 160.0 * tries[-3, 0]
        if ndim == 2 and tries[-4, 0] < 0.3:
            value *= -0.5  # X-ray: some blobs are less dense than their surroundings
        for candidate in tries[:MAX_DISTRACTOR_TRIES]:
            centre = (candidate - 0.5) * fov * 0.8
            distance = np.linalg.norm(landmark_points - centre, axis=1).min()
            if distance > semi.max() + 0.04 * fov:
                shapes.append((Ellipsoid(centre, semi), value))
                break
    return shapes

