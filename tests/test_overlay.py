"""Overlay pictures: sizes, marker placement, 3D montages, worst-case overlays, gallery."""

import numpy as np
import pytest
from PIL import Image as PILImage

from lmk_tf import overlay
from lmk_tf.errors import ConfigError
from lmk_tf.evaluation import plots
from lmk_tf.image import Image


def _read(path):
    assert path.stat().st_size > 0
    with PILImage.open(path) as picture:
        assert picture.format == "PNG"
        return np.asarray(picture.convert("RGB"))


def _flat_image(shape, spacing=None):
    # A ramp, so windowing has something to do, but no colour anywhere.
    values = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    return Image(values, spacing or (1.0,) * len(shape))


def _is_colour(pixel, colour, tolerance=40):
    return np.abs(pixel.astype(int) - colour).max() <= tolerance


def test_window_to_uint8_uses_percentiles():
    values = np.linspace(0.0, 1000.0, 10001)
    out = overlay.window_to_uint8(values)
    assert out.dtype == np.uint8
    assert out[0] == 0 and out[-1] == 255
    assert out[5000] in (127, 128)  # the middle stays in the middle
    assert (out[:100] == 0).all() and (out[-100:] == 255).all()  # below 1% / above 99%


def test_2d_overlay_size_and_markers(tmp_path):
    image = _flat_image((100, 150))
    points = np.array([[20.0, 30.0], [70.0, 120.0]])
    truth = np.array([[20.0, 70.0], [np.nan, np.nan]])
    path = overlay.draw_landmarks(
        image, points, tmp_path / "o.png", names=["a", "b"], truth_index=truth
    )
    rgb = _read(path)
    assert rgb.shape == (100, 150, 3)
    # The cross centre of landmark l is drawn in palette colour l.
    assert _is_colour(rgb[20, 30], overlay.PALETTE[0])
    assert _is_colour(rgb[70, 120], overlay.PALETTE[1])
    # The line from the prediction to its truth circle (beyond the label).
    assert _is_colour(rgb[20, 55], overlay.PALETTE[0])
    # The circle (radius 4 px) around the truth: its top, and nothing above it.
    assert _is_colour(rgb[16, 70], overlay.PALETTE[0])
    r, g, b = rgb[13, 70].astype(int)
    assert r == g == b
    # Far from any marker the picture stays grey.
    r, g, b = rgb[90, 10].astype(int)
    assert r == g == b


def test_absent_predictions_are_not_drawn(tmp_path):
    image = _flat_image((60, 60))
    points = np.array([[30.0, 30.0]])
    rgb = _read(overlay.draw_landmarks(image, points, tmp_path / "a.png", present=[False]))
    r, g, b = rgb[30, 30].astype(int)
    assert r == g == b


def test_off_image_and_non_finite_points_are_skipped(tmp_path):
    image = _flat_image((60, 60))
    # Just beyond the top edge and the right edge (their crosses and labels would
    # reach into the picture), and a NaN row; the first point is inside.
    points = np.array([[30.0, 30.0], [-3.0, 30.0], [30.0, 62.0], [np.nan, 1.0]])
    rgb = _read(overlay.draw_landmarks(image, points, tmp_path / "b.png", names=["a", "x", "y", "z"]))
    alone = _read(overlay.draw_landmarks(image, points[:1], tmp_path / "a.png", names=["a"]))
    assert _is_colour(rgb[30, 30], overlay.PALETTE[0])
    # Exactly the picture of the inside point alone: nothing of the others anywhere.
    np.testing.assert_array_equal(rgb, alone)
    for colour in overlay.PALETTE[1:4]:
        assert not (np.abs(rgb.astype(int) - colour).max(axis=-1) <= 40).any(), colour


def test_large_image_is_downscaled(tmp_path):
    image = _flat_image((1935, 2400), spacing=(0.1, 0.1))
    points = np.array([[967.0, 1200.0]])
    rgb = _read(overlay.draw_landmarks(image, points, tmp_path / "big.png", max_size=1024))
    assert rgb.shape == (round(1935 * 1024 / 2400), 1024, 3)
    # The marker moved with the downscale: index i -> (i + 0.5) * f - 0.5.
    f = 1024 / 2400
    assert _is_colour(rgb[round(967.5 * f - 0.5), round(1200.5 * f - 0.5)], overlay.PALETTE[0])


def test_3d_montage_is_three_planes(tmp_path):
    image = _flat_image((64, 64, 64), spacing=(1.5, 1.5, 1.5))
    points = np.array([[10.0, 20.0, 30.0]])
    rgb = _read(overlay.draw_landmarks(image, points, tmp_path / "m.png", names=["p"]))
    side = 256  # 64 voxels shown at least 256 px
    assert rgb.shape == (side, 3 * side + 2 * 4, 3)
    f = side / 64
    # Panels: normal to axis 0 (rows=axis 1, cols=axis 2), axis 1, axis 2.
    centres = [(20, 30), (10, 30), (10, 20)]
    for k, (r, c) in enumerate(centres):
        x0 = k * (side + 4)
        pixel = rgb[round((r + 0.5) * f - 0.5), x0 + round((c + 0.5) * f - 0.5)]
        assert _is_colour(pixel, overlay.PALETTE[0]), k


def test_3d_montage_respects_spacing_and_slice_axis(tmp_path):
    # 20 slices of 3 mm, 40 x 30 pixels of 1 mm: planes in square mm pixels.
    image = _flat_image((20, 40, 30), spacing=(3.0, 1.0, 1.0))
    picture = overlay.render_landmarks(image, np.array([[5.0, 5.0, 5.0]]), slice_axis=1)
    # First panel is normal to axis 1: 60 mm x 30 mm, scaled up to 256 px high.
    assert picture.height == 256
    first = picture.crop((0, 0, 128, 256))
    assert np.asarray(first).max() > 0
    # Then axis 0 (40 x 30 mm -> 256 x 192) and axis 2 (60 x 40 mm -> 256 x 171).
    assert picture.width == 128 + 4 + 192 + 4 + round(40 * 256 / 60)
    with pytest.raises(ConfigError, match="got 3"):
        overlay.render_landmarks(image, np.zeros((1, 3)), slice_axis=3)


def test_bad_point_shapes_raise(tmp_path):
    image = _flat_image((32, 32))
    with pytest.raises(ConfigError, match=r"\(2, 3\)"):
        overlay.draw_landmarks(image, np.zeros((2, 3)), tmp_path / "x.png")
    with pytest.raises(ConfigError, match="'a'"):
        overlay.draw_landmarks(image, np.zeros((2, 2)), tmp_path / "x.png", names=["a"])


def test_save_worst_overlays_ranks_and_names(tmp_path):
    images = [_flat_image((40, 40)) for _ in range(4)]
    pred = np.full((4, 2, 2), 20.0)
    errors = np.array([[1.0, 1.0], [5.0, 6.0], [np.inf, 0.5], [2.0, 2.0]])
    loaded = []

    def load(i):
        loaded.append(i)
        return images[i]

    paths = plots.save_worst_overlays(
        tmp_path / "worst", load, pred, errors, image_ids=["a", "b/c", "d", "e"], k=2
    )
    # A miss ranks first, then the largest mean error; only those are loaded.
    assert [p.name for p in paths] == ["01_d.png", "02_b_c.png"]
    assert loaded == [2, 1]
    assert all(_read(p).shape == (40, 40, 3) for p in paths)

    # Rewritten in place: only the new run's worst images remain, other files stay.
    (tmp_path / "worst" / "notes.txt").write_text("mine")
    errors[0] = [9.0, 9.0]
    plots.save_worst_overlays(tmp_path / "worst", images, pred, errors, image_ids=["a", "b/c", "d", "e"], k=1)
    assert sorted(p.name for p in (tmp_path / "worst").iterdir()) == ["01_d.png", "notes.txt"]


def test_synthetic_gallery(tmp_path):
    path = plots.save_synthetic_gallery(tmp_path / "synthetic.png", num_2d=3, tile_px=128)
    rgb = _read(path)
    # One row of three 128-px 2D tiles (4 px apart) above three 3D montages
    # scaled to 3 * 128 px wide (each about 128 px high), captions 18 px high.
    assert rgb.shape[1] == 3 * 128 + 2 * 4
    assert rgb.shape[0] == (128 + 18) + 3 * (round(256 * 384 / (3 * 256 + 2 * 4)) + 18)
    # The landmarks were drawn: many coloured pixels.
    colourful = np.abs(rgb[..., 0].astype(int) - rgb[..., 2]) > 60
    assert colourful.sum() > 100



def test_radius_circle_is_drawn_at_its_size_in_mm():
    from lmk_tf.image import Image
    from lmk_tf.overlay import render_landmarks

    image = Image(np.zeros((200, 200), np.float32), spacing=(0.5, 0.5))
    picture = np.asarray(render_landmarks(image, np.array([[100.0, 100.0]]), radius_mm=np.array([20.0])))
    # 20 mm at 0.5 mm per pixel: a circle of 40 px around (row 100, col 100).
    lit = picture.max(axis=-1) > 0
    assert lit[100, 140] or lit[100, 139] or lit[100, 141]
    assert lit[60, 100] or lit[59, 100] or lit[61, 100]
    assert not lit[100, 150] and not lit[100, 125]
    none = np.asarray(render_landmarks(image, np.array([[100.0, 100.0]])))
    assert not (none.max(axis=-1) > 0)[100, 140]
