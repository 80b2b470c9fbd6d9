"""lmk-serve and lmk-client as commands, in fresh processes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.serving.conftest import free_port, install_version
from tests.serving.server_process import REPO, ServerProcess
from tests.serving.toy_model import NAMES, expected


def run_command(module, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_bad_config_is_one_error_line_and_exit_2(tmp_path):
    config = tmp_path / "models.config"
    config.write_text('model_config_list {\n  config { name: "a" base_pth: "/x" }\n}\n')
    result = run_command("pipelines.serve", f"--model_config_file={config}", "--port=0",
                         "--rest_api_port=0")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and f"{config}:2:" in lines[0] and "base_pth" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_serve_then_client_on_files_then_sigterm(tmp_path, toy_export):
    base = tmp_path / "toy"
    install_version(toy_export["2d"], str(base), 3)
    port = free_port()
    server = ServerProcess(
        [f"--port={port}", "--rest_api_port=0", "--model_name=toy", f"--model_base_path={base}"],
        str(tmp_path / "server.log"),
    )
    try:
        server.wait_available(f"127.0.0.1:{port}", ["toy"])
        pixels = (np.random.default_rng(0).random((20, 30)) * 255).astype(np.uint8)
        PILImage.fromarray(pixels).save(tmp_path / "a.png")
        PILImage.fromarray(pixels.T.copy()).save(tmp_path / "b.png")
        result = run_command("pipelines.client", f"--server=127.0.0.1:{port}", "--model=toy",
                             "--spacing=0.5,0.25", str(tmp_path / "a.png"), str(tmp_path / "b.png"))
        assert result.returncode == 0, result.stderr
        results = json.loads(result.stdout)
        assert [r["file"] for r in results] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
        assert results[0]["model"] == {"name": "toy", "version": 3}
        assert [lm["name"] for lm in results[0]["landmarks"]] == NAMES
        want = expected(pixels, (0.5, 0.25))
        np.testing.assert_allclose([lm["mm"] for lm in results[0]["landmarks"]], want["landmarks_mm"],
                                   rtol=1e-5)
        csv = run_command("pipelines.client", f"--server=127.0.0.1:{port}", "--model=toy",
                          "--format=csv", "--version=3", "--spacing=1,1", str(tmp_path / "b.png"))
        assert csv.returncode == 0, csv.stderr
        assert len(csv.stdout.splitlines()) == 1 + len(NAMES)
        # The same writer as lmk-predict's: a Slicer file per image, the 2D picture in the plane z = 0.
        slicer = run_command("pipelines.client", f"--server=127.0.0.1:{port}", "--model=toy",
                             "--format=mrk.json", f"--output={tmp_path}/answers/", "--spacing=0.5,0.25",
                             str(tmp_path / "a.png"))
        assert slicer.returncode == 0, slicer.stderr
        assert slicer.stdout.split() == [str(tmp_path / "answers" / "a.mrk.json")]
        points = json.load(open(tmp_path / "answers" / "a.mrk.json"))["markups"][0]["controlPoints"]
        assert [p["label"] for p in points] == NAMES
        np.testing.assert_allclose([p["position"] for p in points],
                                   [lm["world"] + [0.0] for lm in results[0]["landmarks"]], atol=1e-6)
        missing = run_command("pipelines.client", f"--server=127.0.0.1:{port}", "--model=nope",
                              "--spacing=1,1", str(tmp_path / "a.png"))
        assert missing.returncode == 2
        assert "NOT_FOUND: model 'nope' is not served" in missing.stderr
    finally:
        returncode, output = server.stop()
    assert returncode == 0, output
    assert f"model 'toy' version 3 is AVAILABLE on gRPC 127.0.0.1:{port}" in output
    assert "(REST off)" in output and "lmk-serve: stopping" in output
