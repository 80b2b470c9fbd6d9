"""lmk-batch on the DirectRunner: records equal LocalModel's, bad files go to the errors output."""

import glob
import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

from lmk_tf.batch.inputs import input_paths, split_beam_args, stray_argument
from lmk_tf.batch.pipeline import error_message, run_batch
from lmk_tf.errors import ConfigError, ImageReadError
from lmk_tf.io import read_image
from lmk_tf.serving.local import LocalModel
from tests.serving.toy_model import ASSERT_LIMIT, export_toy_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPACING = (0.5, 0.25)


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    return export_toy_model(str(tmp_path_factory.mktemp("toy") / "toy2d" / "1"), ndim=2)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Four readable PNGs of different sizes and bit depths, one broken PNG,
    and a NIfTI that reads but that the model refuses (its graph asserts max < 1e6)."""
    root = tmp_path_factory.mktemp("archive")
    rng = np.random.default_rng(0)
    good = []
    for i, (shape, dtype) in enumerate([((20, 30), np.uint8), ((33, 17), np.uint16),
                                        ((48, 48), np.uint8), ((25, 40), np.uint16)]):
        pixels = rng.integers(0, 200 if dtype == np.uint8 else 60000, shape).astype(dtype)
        path = root / f"img{i}.png"
        PILImage.fromarray(pixels).save(path)
        good.append(str(path))
    broken = root / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    huge = root / "huge.nii.gz"
    nib.save(nib.Nifti1Image(np.full((6, 7), 2 * ASSERT_LIMIT, np.float32), np.diag([0.5, 0.25, 1, 1])),
             str(huge))
    return {"root": str(root), "good": good, "broken": str(broken), "huge": str(huge)}


def read_jsonl(pattern):
    files = sorted(glob.glob(pattern))
    assert files, f"nothing written at {pattern}"
    return [json.loads(line) for f in files for line in open(f) if line.strip()]


def assert_same_as_local_model(records, model_dir, paths):
    model = LocalModel(model_dir)
    by_file = {r["file"]: r for r in records}
    assert sorted(by_file) == sorted(paths)
    for path in paths:
        expected = {"file": path, **model.predict_image(read_image(path, spacing=SPACING))}
        got = by_file[path]
        assert set(got) == set(expected) == {"file", "model", "shape", "spacing", "landmarks"}
        assert got["shape"] == expected["shape"] and got["spacing"] == expected["spacing"]
        for g, e in zip(got["landmarks"], expected["landmarks"]):
            assert g["name"] == e["name"] and g["present"] == e["present"]
            np.testing.assert_allclose(g["index"], e["index"], atol=0.01)
            np.testing.assert_allclose(g["mm"], e["mm"], atol=0.01)


@pytest.mark.slow
def test_pipeline_predicts_every_good_file_and_lists_the_bad_ones(toy_model, archive, tmp_path):
    paths = input_paths(os.path.join(archive["root"], "*"))
    assert len(paths) == 6
    output = str(tmp_path / "out" / "run")
    summary = run_batch(paths, model_dir=toy_model, output=output, spacing=SPACING)

    assert (summary.predicted, summary.failed) == (4, 2)
    assert [os.path.basename(p) for p in summary.outputs] == ["run-00000-of-00001.jsonl"]
    assert [os.path.basename(p) for p in summary.errors] == ["run-errors-00000-of-00001.jsonl"]
    assert_same_as_local_model(read_jsonl(output + "-0*.jsonl"), toy_model, archive["good"])
    errors = {e["file"]: e["error"] for e in read_jsonl(output + "-errors-*.jsonl")}
    assert sorted(errors) == sorted([archive["broken"], archive["huge"]])
    assert "broken.png" in errors[archive["broken"]]
    assert "image maximum must be < 1e6" in errors[archive["huge"]]  # the graph's own assert, named


@pytest.mark.slow
def test_command_with_a_manifest_and_beam_options_exits_0_despite_a_bad_file(toy_model, archive, tmp_path):
    manifest = tmp_path / "files.txt"
    # Relative to the manifest's folder, comments and blank lines skipped.
    manifest.write_text("# three files\n" + "\n".join(
        os.path.relpath(p, tmp_path) for p in archive["good"][:2] + [archive["broken"]]) + "\n\n")
    output = str(tmp_path / "cmd" / "out")
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.batch", f"--model={os.path.dirname(toy_model)}",
         f"--manifest={manifest}", "--spacing=0.5,0.25", f"--output={output}",
         "--runner=DirectRunner", "--direct_num_workers=1"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "predicted 2:" in proc.stdout and "errors 1:" in proc.stdout, proc.stdout
    assert_same_as_local_model(read_jsonl(output + "-0*.jsonl"), toy_model, archive["good"][:2])
    assert [e["file"] for e in read_jsonl(output + "-errors-*.jsonl")] == [archive["broken"]]


def test_command_names_a_missing_model_or_input_in_one_line(archive, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    base = [sys.executable, "-m", "pipelines.batch", f"--output={tmp_path}/o"]
    for args, message in [
        ([f"--model={tmp_path}/nope", f"--input={archive['good'][0]}"], f"{tmp_path}/nope: no such model directory"),
        ([f"--model={tmp_path}/nope", f"--input={tmp_path}/*.png"], f"--input={tmp_path}/*.png: no files match"),
        ([f"--model={tmp_path}/nope", "--input=x", f"--manifest={tmp_path}/m"], "exactly one of --input"),
        ([f"--model={tmp_path}/nope", "--input=x", "img.png"], "unexpected argument 'img.png'"),
    ]:
        proc = subprocess.run(base + args, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_flags_lmk_batch_does_not_define_go_to_beam():
    from absl import flags

    values = flags.FlagValues()
    flags.DEFINE_string("model", None, "", flag_values=values)
    flags.DEFINE_list("spacing", None, "", flag_values=values)
    argv = ["lmk-batch", "--model", "m", "--direct_num_workers=2", "--spacing=1,1",
            "--runner", "DirectRunner", "--direct_running_mode=multi_processing"]
    ours, beams = split_beam_args(argv, lambda a: values(a, known_only=True))
    assert ours == ["lmk-batch", "--model", "m", "--spacing=1,1"]
    assert beams == ["--direct_num_workers=2", "--runner", "DirectRunner", "--direct_running_mode=multi_processing"]
    assert stray_argument(beams) is None
    assert stray_argument(["--runner=DirectRunner", "a.png"]) == "a.png"


def test_manifest_problems_are_named(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        input_paths(manifest=str(tmp_path / "missing.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match="lists no paths"):
        input_paths(manifest=str(empty))


def test_error_messages_keep_the_packages_own_text_and_name_other_types():
    assert error_message(ImageReadError, "ImageReadError('a.png: not a PNG')") == "a.png: not a PNG"
    assert error_message(ValueError, "ValueError('bad\\nvalue')") == "ValueError: bad value"
    assert error_message(RuntimeError, "RuntimeError(1, 2)") == "RuntimeError: RuntimeError(1, 2)"
