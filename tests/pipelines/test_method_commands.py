"""lmk-prepare -> lmk-train (both stages) -> lmk-evaluate -> lmk-export, as a user runs them."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(module, *args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", f"pipelines.{module}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_commands_end_to_end(tmp_path):
    data, model, report, base = (str(tmp_path / n) for n in ("data", "model", "eval", "saved"))
    p = run("prepare", "--synthetic=6", "--ndim=2", "--fold=0", "--num_folds=3", f"--output={data}")
    assert p.returncode == 0, p.stderr[-2000:]
    info = json.load(open(os.path.join(data, "dataset.json")))
    assert info["counts"] == {"train": 4, "val": 2} and info["global_spacing"] == 2.0
    for stage in ("global", "local"):
        p = run("train", f"--stage={stage}", f"--data={data}", f"--model_dir={model}", "--steps=2",
                "--batch_size=2", "--steps_per_epoch=1")
        assert p.returncode == 0, p.stderr[-2000:]
        assert f"[{stage}] epoch 2/2" in p.stdout
    # Training wrote the preset's inference settings; export uses them unless a flag overrides.
    assert json.load(open(os.path.join(model, "inference.json"))) == {"presence_threshold": 0.5,
                                                                     "local_iterations": 1, "shift_crops": 0,
                                                                     "normalise_scale": False, "global_shifts": 0,
                                                                     "member_weighting": "mean"}
    held_out = ("--synthetic=6", "--fold=0", "--num_folds=3", "--overlays=1")
    p = run("evaluate", f"--model_dir={model}", *held_out, f"--output={report}")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "MRE" in p.stdout
    for name in ("errors.csv", "summary.md", "summary.json", "errors_boxplot.png", "sdr_curve.png"):
        assert os.path.getsize(os.path.join(report, name)) > 0, name
    assert json.load(open(os.path.join(report, "summary.json")))["n_images"] == 2
    p = run("export", f"--model_dir={model}", "--name=cmd", f"--base={base}")
    assert p.returncode == 0, p.stderr[-2000:]
    assert os.path.exists(os.path.join(base, "cmd", "1", "saved_model.pb"))
    info = json.load(open(os.path.join(base, "cmd", "1", "assets", "model_info.json")))
    assert (info["presence_threshold"], info["local_iterations"]) == (0.5, 1)

    # The SavedModel as served gives the report that --model_dir gave.
    p = run("evaluate", f"--model={base}/cmd", *held_out, f"--output={report}-served")
    assert p.returncode == 0, p.stderr[-2000:]
    assert open(os.path.join(report, "errors.csv")).read() == open(f"{report}-served/errors.csv").read()

    p = run("export", f"--model_dir={model}", "--name=cmd", f"--base={base}", "--local_iterations=2")
    assert p.returncode == 0, p.stderr[-2000:]
    info = json.load(open(os.path.join(base, "cmd", "2", "assets", "model_info.json")))
    assert (info["presence_threshold"], info["local_iterations"]) == (0.5, 2)
    assert info["calibration"]["fitted_on"].startswith("nothing")
    assert "uncalibrated" in p.stdout

    # Calibrated on validation images of another seed than the training ones (seed 0).
    p = run("export", f"--model_dir={model}", "--name=cmd", f"--base={base}", "--presence_threshold=0",
            "--calibrate", "--synthetic=8", "--seed=21")
    assert p.returncode == 0, p.stderr[-2000:]
    calibration = json.load(open(os.path.join(base, "cmd", "3", "assets", "model_info.json")))["calibration"]
    assert "of 8 validation images" in calibration["fitted_on"] and "fitted on" in p.stdout
    # ... and that map, as a file, carried by another export unchanged.
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"landmark_names": info["landmark_names"], **calibration}))
    p = run("export", f"--model_dir={model}", "--name=cmd", f"--base={base}", f"--calibration={path}")
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.load(open(os.path.join(base, "cmd", "4", "assets", "model_info.json")))["calibration"] == calibration


@pytest.mark.parametrize("module,args,message", [
    ("train", ["--stage=global", "--data=/nonexistent", "--model_dir=/tmp/x"], "run lmk-prepare"),
    ("prepare", ["--output=/tmp/x"], "give --images and --landmarks"),
    ("export", ["--model_dir=/nonexistent", "--name=x", "--base=/tmp/lmk-export-test"], "not found"),
    ("export", ["--model_dir=/a", "--name=x", "--calibrate", "--calibration=c.json"], "not both"),
    ("evaluate", ["--model=/a", "--model_dir=/b", "--synthetic=2", "--output=/tmp/x"], "exactly one"),
    ("evaluate", ["--synthetic=2", "--output=/tmp/x"], "exactly one"),
    ("evaluate", ["--model=/nonexistent", "--synthetic=2", "--output=/tmp/x"], "/nonexistent: no such model"),
    ("evaluate", ["--model=/a", "--presence_threshold=0.2", "--synthetic=2", "--output=/tmp/x"],
     "--presence_threshold applies to --model_dir"),
])
def test_user_errors_are_one_line_exit_2(module, args, message):
    p = run(module, *args)
    assert p.returncode == 2
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert "Traceback" not in p.stderr
