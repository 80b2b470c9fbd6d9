"""A 3D model end to end: trained (specialised local nets), exported, asked for a DICOM series.

One tiny model serves two checks: the paper's per-landmark local networks
train and export (and the export answers like the Keras graph), and
`lmk-predict` on an oblique DICOM series with a non-zero origin returns world
coordinates that follow the series' geometry.
"""

import copy
import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from pydicom.uid import generate_uid

from lmk_tf.data.prepare import prepare_records, synthetic_samples
from lmk_tf.export.savedmodel import export
from lmk_tf.image import Image
from lmk_tf.io import read_image
from lmk_tf.method.model_dir import assemble
from lmk_tf.serving.local import LocalModel
from lmk_tf.synthetic import landmark_names, make_sample
from lmk_tf.training.trainer import train_stage
from tests.conftest import tiny_configs
from tests.io.helpers import ct_small
from tests.serving.server_process import REPO

NUM_LANDMARKS = 2  # each specialised local net costs seconds of tracing


class Losses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_epoch_end(self, epoch, logs=None):
        self.losses.append(logs["loss"])


@pytest.fixture(scope="module")
def model_3d(tmp_path_factory):
    root = tmp_path_factory.mktemp("model_3d")
    g, loc = tiny_configs(ndim=3)
    g = dataclasses.replace(g, steps=6, steps_per_epoch=6, batch_size=2)
    loc = dataclasses.replace(loc, local_mode="specialised", steps=24, steps_per_epoch=8, batch_size=2,
                              learning_rate=3e-3)
    data = str(root / "data")
    prepare_records(synthetic_samples(3, 4, 11, shape=(40, 40, 40), spacing=(1.5, 1.5, 1.5),
                                      num_landmarks=NUM_LANDMARKS),
                    data, split="train", landmark_names=landmark_names(3, NUM_LANDMARKS),
                    global_spacing=g.spacing, local_spacing=loc.spacing, log=None)
    model_dir = str(root / "model")
    train_stage(g, data, model_dir, verbose=0)
    log = Losses()
    local_net = train_stage(loc, data, model_dir, verbose=0, callbacks=[log])
    exported = export(model_dir, str(root / "saved" / "tiny3d"))
    return {"model_dir": model_dir, "export": exported, "local_net": local_net, "losses": log.losses,
            "served": LocalModel(exported, warmup=True)}


@pytest.mark.slow
def test_specialised_local_nets_train_and_export(model_3d):
    assert model_3d["losses"][-1] < model_3d["losses"][0], model_3d["losses"]
    nets = [layer for layer in model_3d["local_net"].layers if isinstance(layer, keras.Model)]
    assert len(nets) == NUM_LANDMARKS, "one local network per landmark"
    local = model_3d["served"]  # loaded with its warm-up replayed
    assert local.model_info["local_config"]["local_mode"] == "specialised"
    image, _, _ = make_sample(3, 21, shape=(30, 36, 33), spacing=(1.7, 1.2, 1.4), num_landmarks=NUM_LANDMARKS)
    inputs = {"image": image.array[..., None].astype(np.float32), "spacing": np.asarray(image.spacing, np.float32)}
    expected = assemble(model_3d["model_dir"])(inputs)  # the Keras graph, eagerly
    served = local.predict(inputs)
    for key in ("landmarks_index", "landmarks_mm", "confidence", "present"):
        np.testing.assert_allclose(served[key], np.asarray(expected[key]), atol=1e-4, err_msg=key)


# An oblique series: rows and columns turned 25 degrees about one axis and 10 about
# another, slices 2.5 mm apart along their normal, CT_small's non-zero origin.
def _unit(v):
    return np.asarray(v, float) / np.linalg.norm(v)


def oblique_axes():
    a, b = np.radians(25.0), np.radians(10.0)
    row_dir = _unit([np.cos(a), np.sin(a), 0.0])                    # along increasing column
    col_dir = _unit([-np.sin(a) * np.cos(b), np.cos(a) * np.cos(b), np.sin(b)])  # increasing row
    return row_dir, col_dir, np.cross(row_dir, col_dir)


def write_oblique_series(directory, volume, pixel_spacing, slice_spacing):
    """One file per slice, written with pydicom from CT_small; returns (origin, direction)."""
    base = ct_small()
    row_dir, col_dir, normal = oblique_axes()
    origin = np.asarray([float(v) for v in base.ImagePositionPatient]) + [12.5, -7.25, 30.0]
    uid = generate_uid()
    os.makedirs(directory)
    # Files named in reverse order: the reader must sort by position along the normal.
    for k, pixels in enumerate(volume):
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [round(float(v), 8) for v in (*row_dir, *col_dir)]
        ds.ImagePositionPatient = [round(float(v), 6) for v in origin + k * slice_spacing * normal]
        ds.PixelSpacing = [float(s) for s in pixel_spacing]
        ds.SliceThickness = float(slice_spacing)
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        pixels = np.ascontiguousarray(pixels.astype(np.int16))
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelData = pixels.tobytes()
        ds.save_as(os.path.join(directory, f"slice{len(volume) - k:03d}.dcm"))
    # Array axes (slice, row, col) point along (normal, column direction, row direction).
    return origin, np.stack([normal, col_dir, row_dir], axis=1)


@pytest.mark.slow
def test_predict_on_an_oblique_dicom_series_gives_world_coordinates(model_3d, tmp_path):
    spacing = (2.5, 0.9, 1.1)
    image, _, _ = make_sample(3, 23, shape=(16, 44, 36), spacing=spacing, num_landmarks=NUM_LANDMARKS)
    a = image.array
    volume = np.round((a - a.min()) / (a.max() - a.min()) * 2000).astype(np.int16)  # stored values
    series = str(tmp_path / "series")
    origin, direction = write_oblique_series(series, volume, spacing[1:], spacing[0])

    proc = subprocess.run([sys.executable, "-m", "pipelines.predict", f"--model={model_3d['export']}", series],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (answer,) = json.loads(proc.stdout)
    assert answer["shape"] == [16, 44, 36]
    np.testing.assert_allclose(answer["spacing"], spacing, rtol=1e-5)
    index = np.array([lm["index"] for lm in answer["landmarks"]])
    world = np.array([lm["world"] for lm in answer["landmarks"]])
    assert index.shape == (NUM_LANDMARKS, 3) and np.isfinite(index).all()
    np.testing.assert_allclose([lm["mm"] for lm in answer["landmarks"]], index * spacing, rtol=1e-5)
    # World = origin + direction @ (spacing * index), with the geometry the series was written with.
    written = Image(volume.astype(np.float32) - 1024, spacing, tuple(origin), direction)
    np.testing.assert_allclose(world, written.index_to_world(index), atol=1e-3)
    # Plainly: slice k, row r, column c lie at IPP_0 + k dz normal + r dy col_dir + c dx row_dir.
    normal, col_dir, row_dir = direction.T
    by_hand = (origin + index[:, :1] * spacing[0] * normal + index[:, 1:2] * spacing[1] * col_dir
               + index[:, 2:] * spacing[2] * row_dir)
    np.testing.assert_allclose(world, by_hand, atol=1e-3)
    # And the pixels the model saw are the volume, in that order.
    read = read_image(series)
    np.testing.assert_array_equal(read.array, volume.astype(np.float32) - 1024)
    expected = model_3d["served"].predict_image(read)
    np.testing.assert_allclose(index, [lm["index"] for lm in expected["landmarks"]], atol=1e-4)
