"""The bad-input catalogue for readers and commands (docs/reliability.md).

Readers: every broken or hostile file is an ImageReadError/ConfigError naming
the file, and absurd sizes are refused from the header before any pixel
memory exists. Commands: one `error:` line, exit code 2, no traceback, and
nothing written (no overlay, no output) when any file is bad.
"""

import json
import os
import subprocess
import sys
from concurrent import futures

import numpy as np
import pytest

from lmk_tf.errors import ConfigError, ImageReadError, RequestError
from lmk_tf.io import read_image
from lmk_tf.serving.client import read_image_for_model
from lmk_tf.serving.local import LocalModel
from tests.reliability import bad_files
from tests.serving.conftest import toy_export  # noqa: F401 - the fixture
from tests.serving.server_process import REPO

# ----- readers, in this process -----

UNREADABLE = {
    "text_named_png": (bad_files.text_as_png, r"not a readable picture|cannot decode"),
    "random_bytes_named_dcm": (bad_files.random_bytes_dcm, r"not a readable DICOM|no image"),
    "empty_file": (bad_files.empty_file, r"an empty file"),
    "truncated_dicom": (bad_files.truncated_dicom, r"truncated|cannot decode|not a readable DICOM"),
    "corrupted_dicom": (bad_files.corrupted_dicom, r"not a readable DICOM|truncated|no image"),
    "zero_axis_nifti": (bad_files.zero_axis_nifti, r"has no pixels"),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_unreadable_file_is_an_image_read_error_naming_it(case, tmp_path):
    make, message = UNREADABLE[case]
    path = make(str(tmp_path))
    with pytest.raises(ImageReadError, match=message) as info:
        read_image(path)
    assert str(info.value).startswith(path)


HUGE = {
    "nifti_30000_cubed": bad_files.huge_nifti_header,
    "metaimage_100000_cubed": bad_files.huge_metaimage_header,
    "dicom_65535x65535x60000": bad_files.huge_dicom_header,
    "png_100000_squared": bad_files.huge_png_header,
}


@pytest.fixture(scope="module")
def huge_reads(tmp_path_factory):
    """Each HUGE file read in one fresh process, with the kernel's count of its peak memory."""
    d = str(tmp_path_factory.mktemp("huge"))
    cases = [(name, make(d)) for name, make in HUGE.items()]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reliability.read_memory",
         json.dumps(bad_files.small_files(d)), json.dumps(cases)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(cases), json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", sorted(HUGE))
def test_absurd_size_is_refused_before_allocating(case, huge_reads):
    paths, results = huge_reads
    result = results[case]
    # The project's header check, not a library's own guard, and from the header alone.
    assert result["error"] is not None, f"{paths[case]} was read"
    assert result["error"].startswith(paths[case] + ": the image has "), result["error"]
    assert "more than the limit of" in result["error"] and "refused before reading the pixels" in result["error"]
    assert result["peak_mb"] < 32, f"resident memory grew {result['peak_mb']:.0f} MB before refusing"
    assert result["vm_mb"] < 256, f"address space grew {result['vm_mb']:.0f} MB before refusing"


def test_size_limit_is_configurable(tmp_path, monkeypatch):
    path = bad_files.good_png(str(tmp_path))  # 20 x 24 = 480 pixels
    assert read_image(path, spacing=1).shape == (20, 24)
    monkeypatch.setenv("LMK_MAX_IMAGE_ELEMENTS", "479")
    with pytest.raises(ImageReadError, match=r"480 pixels.*limit of 479 \(\$LMK_MAX_IMAGE_ELEMENTS\)"):
        read_image(path, spacing=1)
    monkeypatch.setenv("LMK_MAX_IMAGE_ELEMENTS", "lots")
    with pytest.raises(ConfigError, match="must be an integer"):
        read_image(path, spacing=1)


def test_dicom_without_spacing_warns_and_prediction_requires_spacing(tmp_path):
    path = bad_files.dicom_without_spacing(str(tmp_path))
    with pytest.warns(UserWarning, match="states no spacing"):
        image = read_image(path)
    assert image.meta["spacing_source"] == "default"  # lmk-info may still show it
    with pytest.raises(ConfigError, match=r"states no pixel spacing; give --spacing"):
        read_image_for_model(path)
    image = read_image_for_model(path, (0.2, 0.3))
    assert image.spacing == (0.2, 0.3) and image.meta["spacing_source"] == "argument"


@pytest.mark.parametrize("spacing", [(0.0, 1.0), (-0.5, 0.5), (float("nan"), 1.0), (1.0, 2.0, 3.0)])
def test_bad_spacing_argument_is_a_config_error(spacing, tmp_path):
    path = bad_files.good_png(str(tmp_path))
    with pytest.raises(ConfigError, match="spacing"):
        read_image(path, spacing=spacing)


@pytest.fixture(scope="module")
def toy_local(toy_export):  # noqa: F811
    return LocalModel(toy_export["2d"])


def test_nan_and_inf_pixels_are_refused_naming_the_input(tmp_path, toy_local):
    image = read_image(bad_files.nan_nifti(str(tmp_path)))
    assert not np.isfinite(image.array).all()  # the reader keeps what the file holds
    with pytest.raises(RequestError, match=r"input 'image' has 2 non-finite values"):
        toy_local.predict_image(image)


def test_one_pixel_image_is_refused_naming_the_input(tmp_path, toy_local):
    image = read_image(bad_files.one_pixel_png(str(tmp_path)), spacing=1)
    with pytest.raises(RequestError, match=r"input 'image' must be at least 2 pixels"):
        toy_local.predict_image(image)


# ----- commands, in fresh processes (run concurrently once per module) -----

def _run(module, *args, env=None):
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=180)


COMMAND_CASES = {
    # name: (module, files to make, extra flags, expected message)
    "predict_text_file": ("pipelines.predict", [bad_files.text_as_png], ["--spacing=1"],
                          "not a readable picture"),
    "predict_truncated_dicom": ("pipelines.predict", [bad_files.truncated_dicom], [],
                                "truncated.dcm"),
    "predict_dicom_without_spacing": ("pipelines.predict", [bad_files.dicom_without_spacing], [],
                                      "states no pixel spacing; give --spacing"),
    "predict_nan_pixels": ("pipelines.predict", [bad_files.nan_nifti], [],
                           "input 'image' has 2 non-finite values"),
    "predict_one_pixel": ("pipelines.predict", [bad_files.one_pixel_png], ["--spacing=1"],
                          "input 'image' must be at least 2 pixels"),
    "predict_huge_header": ("pipelines.predict", [bad_files.huge_nifti_header], [],
                            "more than the limit"),
    "predict_negative_spacing": ("pipelines.predict", [bad_files.good_png], ["--spacing=-1,1"],
                                 "--spacing must be > 0"),
    # A good file first, then a bad one: no overlay and no output may be left behind.
    "predict_good_then_bad": ("pipelines.predict", [bad_files.good_png, bad_files.empty_file],
                              ["--spacing=1"], "an empty file"),
    # Files are read before the client connects (the address has no server).
    "client_bad_file_before_connecting": ("pipelines.client", [bad_files.good_png,
                                                               bad_files.truncated_dicom],
                                          ["--spacing=1", "--server=127.0.0.1:9", "--model=toy"],
                                          "truncated.dcm"),
    "info_huge_header": ("pipelines.info", [bad_files.huge_metaimage_header], [],
                         "more than the limit"),
}


@pytest.fixture(scope="module")
def command_results(toy_export, tmp_path_factory):  # noqa: F811
    jobs = {}
    with futures.ThreadPoolExecutor(max_workers=3) as pool:
        for name, (module, makers, flags, _) in COMMAND_CASES.items():
            d = str(tmp_path_factory.mktemp(name))
            files = [make(d) for make in makers]
            overlay = os.path.join(d, "overlays")
            args = list(flags)
            if module == "pipelines.predict":
                args = [f"--model={toy_export['2d']}", f"--overlay={overlay}", *args]
            jobs[name] = (pool.submit(_run, module, *args, *files), overlay)
        return {name: (job.result(), overlay) for name, (job, overlay) in jobs.items()}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(COMMAND_CASES))
def test_command_fails_with_one_line_exit_2_and_writes_nothing(case, command_results):
    result, overlay = command_results[case]
    message = COMMAND_CASES[case][3]
    assert result.returncode == 2, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert message in errors[0], errors[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not os.path.exists(overlay) or os.listdir(overlay) == []
