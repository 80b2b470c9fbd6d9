"""Volumes with one landmark file each: pairing by name, world -> index, refusals."""

import os

import numpy as np
import pytest

from lmk_tf.data.sources import pair_by_stem, read_manifest, volume_source
from lmk_tf.errors import ConfigError
from lmk_tf.image import Image
from lmk_tf.io import read_image, write_image
from lmk_tf.io.landmarks import Landmarks
from lmk_tf.io.slicer_markups import write_fcsv, write_mrk_json
from tests.io.helpers import write_series

NAMES = ["nasion", "sella", "vertex"]


def _rotation(a, b):
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def _volume(seed):
    rng = np.random.default_rng(seed)
    return Image((rng.random((6, 10, 8)) * 100).astype(np.int16), (2.0, 0.8, 0.7),
                 tuple(rng.uniform(-100, 100, 3)), _rotation(*rng.uniform(-0.6, 0.6, 2)))


INDEX = np.array([[1.0, 2.5, 3.25], [4.2, 8.0, 0.5], [2.0, 5.0, 6.9]])


@pytest.fixture
def cases(tmp_path):
    """case1 (NIfTI, LPS .mrk.json), case2 (NRRD, RAS .fcsv, names shuffled), case3 (DICOM series folder)."""
    images, marks = tmp_path / "images", tmp_path / "landmarks"
    images.mkdir()
    marks.mkdir()
    write_image(_volume(1), str(images / "case1.nii.gz"))
    write_mrk_json(marks / "case1.mrk.json", Landmarks(NAMES, INDEX), image=read_image(str(images / "case1.nii.gz")))
    write_image(_volume(2), str(images / "case2.nrrd"))
    order = [2, 0, 1]
    write_fcsv(marks / "case2.fcsv", Landmarks([NAMES[i] for i in order], INDEX[order] + 0.5),
               image=read_image(str(images / "case2.nrrd")), coordinate_system="RAS")
    c, s = np.cos(0.3), np.sin(0.3)
    write_series(images / "case3", [0.0, 2.5, 5.0, 7.5], iop=(c, s, 0, -s, c, 0))
    series = read_image(str(images / "case3"))
    write_mrk_json(marks / "case3.mrk.json", Landmarks(NAMES, [[1.0, 30.0, 40.5], [2.0, 60.0, 10.0], [3.0, 5.0, 5.0]]),
                   image=series)
    (images / "notes.txt").write_text("not an image")
    return images, marks


def test_volumes_pair_by_name_and_their_world_points_become_indices(cases):
    images, marks = cases
    pairs = pair_by_stem(str(images), str(marks))
    assert [(os.path.basename(i), os.path.basename(m)) for i, m in pairs] == [
        ("case1.nii.gz", "case1.mrk.json"), ("case2.nrrd", "case2.fcsv"), ("case3", "case3.mrk.json")]
    samples, names = volume_source(pairs)
    assert names == NAMES and [s.image_id for s in samples] == ["case1", "case2", "case3"]
    np.testing.assert_allclose(samples[0].points, INDEX, atol=1e-6)
    np.testing.assert_allclose(samples[1].points, INDEX + 0.5, atol=1e-6)  # reordered to the first file's names
    np.testing.assert_allclose(samples[2].points, [[1.0, 30.0, 40.5], [2.0, 60.0, 10.0], [3.0, 5.0, 5.0]], atol=1e-4)
    assert samples[2].load().shape == (4, 128, 128)


def test_a_manifest_names_the_pairs(cases, tmp_path):
    (tmp_path / "pairs.csv").write_text("image,landmarks\nimages/case2.nrrd,landmarks/case2.fcsv\n")
    samples, names = volume_source(read_manifest(str(tmp_path / "pairs.csv")))
    assert [s.image_id for s in samples] == ["case2"] and names == ["vertex", "nasion", "sella"]
    (tmp_path / "bad.csv").write_text("file,points\na,b\n")
    with pytest.raises(ConfigError, match="bad.csv: a manifest needs a header with the columns image,landmarks"):
        read_manifest(str(tmp_path / "bad.csv"))


def test_other_landmark_names_are_refused(cases):
    images, marks = cases
    write_mrk_json(marks / "case2.mrk.json", Landmarks(["nasion", "sella", "menton"], INDEX), image=_volume(2))
    os.remove(marks / "case2.fcsv")
    with pytest.raises(ConfigError, match=r"case2.mrk.json: its landmarks differ from those of .*case1.mrk.json "
                                          r"\(the first file\): missing \['vertex'\], extra \['menton'\]"):
        volume_source(pair_by_stem(str(images), str(marks)))


def test_a_point_outside_its_volume_is_refused_unless_allowed(cases):
    images, marks = cases
    image = read_image(str(images / "case1.nii.gz"))
    outside = INDEX.copy()
    outside[1] = [4.0, 8.0, 9.0]  # 8 columns: 9 is past the last
    write_mrk_json(marks / "case1.mrk.json", Landmarks(NAMES, outside), image=image)
    pairs = pair_by_stem(str(images), str(marks))
    with pytest.raises(ConfigError, match=r"case1.mrk.json: landmark 'sella' lies outside .*case1.nii.gz \(index "
                                          r"\[4.0, 8.0, 9.0\], shape \[6, 10, 8\]\).*--allow_outside"):
        volume_source(pairs)
    samples, _ = volume_source(pairs, allow_outside=True)
    assert np.isnan(samples[0].points[1]).all() and np.isfinite(samples[0].points[[0, 2]]).all()


def test_pairing_errors_name_the_files(cases, tmp_path):
    images, marks = cases
    os.remove(marks / "case2.fcsv")
    with pytest.raises(ConfigError, match=r"case2.nrrd: no landmark file in .*landmarks \(pairs are found by name"):
        pair_by_stem(str(images), str(marks))
    write_fcsv(marks / "case2.fcsv", Landmarks(NAMES, INDEX, "world"))
    write_fcsv(marks / "case1.fcsv", Landmarks(NAMES, INDEX, "world"))
    with pytest.raises(ConfigError, match=r"case1.fcsv and .*case1.mrk.json are both landmarks of 'case1'"):
        pair_by_stem(str(images), str(marks))
    with pytest.raises(ConfigError, match="nowhere: the image directory does not exist"):
        pair_by_stem(str(tmp_path / "nowhere"), str(marks))
