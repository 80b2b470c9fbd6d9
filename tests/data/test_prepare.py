"""lmk-prepare's library half: shards written one image at a time, isotropic stage grids."""

import os

import numpy as np
import pytest

from lmk_tf.data.prepare import prepare_records, resample_for_stage
from lmk_tf.data.records import serialize_example, write_shards
from lmk_tf.image import Image


def _samples(n, shape=(24, 40), spacing=(0.9, 0.6)):
    rng = np.random.default_rng(7)
    return [(f"img{i}", Image(rng.random(shape).astype(np.float32) * 100, spacing),
             np.array([[5.0 + i, 7.5], [np.nan, np.nan]])) for i in range(n)]


@pytest.mark.parametrize("n", [2, 6])  # fewer images than shards, and more
def test_streamed_shards_are_those_write_shards_writes(tmp_path, n):
    samples = _samples(n)
    prepare_records(iter(samples), str(tmp_path / "streamed"), split="train", landmark_names=["a", "b"],
                    global_spacing=2.0, local_spacing=1.0, num_shards=4, log=None)
    for stage, spacing in (("global", 2.0), ("local", 1.0)):
        examples = [serialize_example(*resample_for_stage(image, pts, spacing), image_id)
                    for image_id, image, pts in samples]
        write_shards(examples, str(tmp_path / "listed"), f"train-{stage}", 4)
    names = sorted(os.listdir(tmp_path / "listed"))
    assert sorted(n for n in os.listdir(tmp_path / "streamed") if n.endswith(".tfrecord")) == names
    assert len(names) == 2 * min(n, 4)
    for name in names:
        assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "listed" / name).read_bytes(), name


def test_a_failure_midway_leaves_no_dataset_json(tmp_path):
    samples = _samples(5)
    bad = samples[:4] + [("flat", Image(np.zeros((3, 4, 5), np.float32), (1.0, 1.0, 1.0)), np.zeros((2, 3)))]
    with pytest.raises(Exception, match="flat: is 3D but earlier images are 2D"):
        prepare_records(iter(bad), str(tmp_path), split="train", landmark_names=["a", "b"],
                        global_spacing=2.0, local_spacing=1.0, num_shards=4, log=None)
    assert not os.path.exists(tmp_path / "dataset.json")


def test_anisotropic_volumes_are_resampled_to_isotropic_stage_grids():
    # 0.8 x 0.8 mm in plane, 2 mm slices -> 1 mm cubes (and 3 mm for the global stage).
    image = Image(np.random.default_rng(0).random((12, 30, 25)).astype(np.float32), (2.0, 0.8, 0.8))
    point = np.array([[5.0, 10.0, 12.0]])
    for target in (1.0, 3.0):
        arr, spacing, pts = resample_for_stage(image, point, target)
        assert arr.shape == tuple(round(n * s / target) for n, s in zip(image.shape, image.spacing))
        np.testing.assert_allclose(spacing, target, rtol=0.05)
        # The same physical point: input index = offset + scale * output index.
        scale = np.asarray(spacing) / np.asarray(image.spacing)
        np.testing.assert_allclose((scale - 1) / 2 + scale * pts[0], point[0], atol=1e-5)


def test_prepare_records_the_training_heads_landmark_distances(tiny_data):
    import json

    from lmk_tf.method.scale import reference_distances
    from tests.conftest import tiny_samples

    samples, names = tiny_samples()  # what tiny_data prepared
    info = json.load(open(os.path.join(tiny_data, "dataset.json")))
    want = reference_distances([s.points * np.asarray(s.load().spacing) for s in samples])
    np.testing.assert_allclose(info["reference_distances_mm"], want, rtol=1e-9)
    assert len(want) == len(names) * (len(names) - 1) // 2


def test_a_scale_normalised_graph_takes_the_reference_training_copied(tiny_model_dir, tmp_path):
    import json
    import shutil

    from lmk_tf.errors import ConfigError
    from lmk_tf.method.model_dir import assemble

    model = assemble(tiny_model_dir, normalise_scale=True)
    info = json.load(open(os.path.join(tiny_model_dir, "dataset.json")))
    assert model.normalise_scale and model.reference_distances_mm == info["reference_distances_mm"]
    older = tmp_path / "older"
    shutil.copytree(tiny_model_dir, older)
    del info["reference_distances_mm"]
    (older / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="normalise_scale needs the training images' landmark distances"):
        assemble(str(older), normalise_scale=True)
    assert not assemble(str(older)).normalise_scale
