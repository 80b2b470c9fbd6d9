"""serving_batch and serving_encoded answer as serving_default does, in a process that knows only TF."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image as PILImage

from lmk_tf.io import read_image
from lmk_tf.synthetic import make_sample

SPACINGS = [[1.0, 1.0], [0.8, 1.25], [1.1, 0.9]]


def grey(seed, shape=(80, 72)):
    image, _, _ = make_sample(2, seed, shape=shape)
    a = np.asarray(image.array, np.float64)
    return (a - a.min()) / max(a.max() - a.min(), 1e-9)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Three same-size images as float arrays, and an 8-bit PNG, a 16-bit PNG and a JPEG
    with the pixel values the client's reader (Pillow) gets from each."""
    root = tmp_path_factory.mktemp("signature_inputs")
    images = np.stack([grey(s) for s in (11, 12, 13)]).astype(np.float32)[..., None] * 1000
    np.save(root / "batch.npy", images)
    pictures = {"png8": (grey(21) * 255).astype(np.uint8), "png16": (grey(22) * 65535).astype(np.uint16),
                "jpeg": (grey(23) * 255).astype(np.uint8)}
    paths = {}
    for name, pixels in pictures.items():
        paths[name] = str(root / (name + (".jpg" if name == "jpeg" else ".png")))
        PILImage.fromarray(pixels).save(paths[name], quality=85)
        read = read_image(paths[name], spacing=(1.0, 1.0)).array
        if name != "jpeg":
            np.testing.assert_array_equal(read, pixels)  # lossless: the stored values come back
        np.save(root / f"{name}.npy", np.asarray(read, np.float32)[..., None])
    assert read_image(paths["png16"], spacing=(1.0, 1.0)).array.dtype == np.uint16
    return root, paths


def test_batch_and_encoded_equal_default_in_a_fresh_process(exported, files):
    root, paths = files
    script = textwrap.dedent(f"""
        import json, sys, numpy as np, tensorflow as tf
        sigs = tf.saved_model.load({exported!r}).signatures
        listed = lambda out: {{k: v.numpy().tolist() for k, v in out.items()}}
        images, spacings = np.load({str(root / 'batch.npy')!r}), np.array({SPACINGS!r}, np.float32)
        result = {{"default": [listed(sigs["serving_default"](image=tf.constant(x), spacing=tf.constant(s)))
                              for x, s in zip(images, spacings)],
                  "batch": listed(sigs["serving_batch"](image=tf.constant(images), spacing=tf.constant(spacings)))}}
        for name, path in {paths!r}.items():
            pixels, spacing = np.load({str(root)!r} + "/" + name + ".npy"), tf.constant(spacings[0])
            result[name] = [listed(sigs["serving_default"](image=tf.constant(pixels), spacing=spacing)),
                            listed(sigs["serving_encoded"](image_bytes=tf.constant(open(path, "rb").read()),
                                                           spacing=spacing))]
        assert not any(m.startswith("lmk_tf") for m in sys.modules)
        print(json.dumps(result))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    outputs = set(got["default"][0])
    assert outputs >= {"landmarks_index", "landmarks_mm", "confidence", "present", "expected_error_mm"}
    assert set(got["batch"]) == outputs
    for i, one in enumerate(got["default"]):
        for key in outputs:
            np.testing.assert_allclose(np.asarray(got["batch"][key])[i], one[key], atol=0.01, err_msg=key)
    for name in paths:
        default, encoded = got[name]
        assert set(encoded) == outputs
        np.testing.assert_allclose(encoded["landmarks_index"], default["landmarks_index"], atol=0.01, err_msg=name)
        np.testing.assert_allclose(encoded["confidence"], default["confidence"], atol=1e-4, err_msg=name)
        assert encoded["present"] == default["present"], name


def test_batch_keeps_the_input_asserts(exported):
    batch = tf.saved_model.load(exported).signatures["serving_batch"]
    images = tf.zeros([2, 20, 20, 1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="must have the same batch size"):
        batch(image=images, spacing=tf.ones([3, 2]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="spacing.* must be > 0"):
        batch(image=images, spacing=tf.constant([[1.0, 1.0], [0.0, 1.0]]))
    assert batch(image=images[:0], spacing=tf.ones([0, 2]))["landmarks_index"].shape[0] == 0


def test_encoded_refuses_what_is_not_a_decodable_picture(exported, files):
    encoded = tf.saved_model.load(exported).signatures["serving_encoded"]
    with open(files[1]["png8"], "rb") as f:
        png = f.read()
    huge = bytearray(png)
    huge[16:24] = (200_000).to_bytes(4, "big") * 2  # a header claiming 200000 x 200000 pixels
    spacing = tf.ones([2])
    for data, message in [(b"GIF89a", "must be a PNG or JPEG file"), (b"", "must be a PNG or JPEG file"),
                          (bytes(huge), "holds more than"), (png[:60], "PNG")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            encoded(image_bytes=tf.constant(data), spacing=spacing)


def test_a_3d_export_has_serving_batch_and_no_serving_encoded(tmp_path):
    """Untrained 3D stages are enough: the signatures are about wiring, not accuracy."""
    import dataclasses

    from lmk_tf.export.savedmodel import ServingModule
    from lmk_tf.method.graph import GlobalToLocal
    from lmk_tf.method.networks import NetConfig, build_fcn, build_local_net
    from lmk_tf.method.presets import default_config

    net = NetConfig(stem_filters=4, stem_kernel=3, stage_filters=(8, 8), stage_strides=(2, 1), head_filters=8)
    g = dataclasses.replace(default_config("global", 3), spacing=2.0, patch_size=32, net=net)
    loc = dataclasses.replace(default_config("local", 3), spacing=1.0, patch_size=16,
                              net=dataclasses.replace(net, stem_stride=1, stage_strides=(2, 2)))
    pipeline = GlobalToLocal(build_fcn(3, 2, g.net), build_local_net(3, 2, loc.net, crop_size=16, mode=loc.local_mode),
                             dataclasses.asdict(g), dataclasses.asdict(loc), ["a", "b"])
    module = ServingModule(pipeline, "{}")
    tf.saved_model.save(module, str(tmp_path / "1"), signatures=module.signatures())
    sigs = tf.saved_model.load(str(tmp_path / "1")).signatures
    assert set(sigs) == {"serving_default", "serving_batch", "model_info", "diagnostics"}
    volumes = np.random.default_rng(0).random((2, 20, 24, 22, 1)).astype(np.float32)
    spacings = np.array([[1.0, 1.0, 1.0], [1.5, 1.0, 0.8]], np.float32)
    batch = sigs["serving_batch"](image=volumes, spacing=spacings)
    for i in range(2):
        one = sigs["serving_default"](image=volumes[i], spacing=spacings[i])
        for key in one:
            np.testing.assert_allclose(batch[key][i], one[key], atol=1e-4, err_msg=key)
