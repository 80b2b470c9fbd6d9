"""`make demo`: the whole job end to end on synthetic 2D images, in a few minutes.

1. synthesise a small training set and prepare TFRecords;
2. train the global and the local stage briefly;
3. calibrate the predicted error on validation images (a seed of their own),
   and export ONE SavedModel to saved_models/demo/<version>/;
4. start `lmk-serve` on loopback with a TF Serving models.config;
5. ask it for landmarks with `lmk-client` on held-out image files;
6. print them next to the truth, write an overlay picture, stop the server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

flags.DEFINE_string("workdir", os.path.join("build", "demo"), "Scratch directory.")
flags.DEFINE_string("saved_models", "saved_models", "Where the exported model goes (<this>/demo/<version>).")
flags.DEFINE_integer("num_train", 200, "Synthetic training images.", lower_bound=8)
flags.DEFINE_integer("global_steps", 800, "Global-stage training steps.", lower_bound=1)
flags.DEFINE_integer("local_steps", 800, "Local-stage training steps.", lower_bound=1)
flags.DEFINE_integer("num_test", 3, "Held-out images sent to the server.", lower_bound=1)
flags.DEFINE_integer("num_validation", 30, "Validation images (seed 99, apart from the training seed 1 and the "
                     "test seed 777) on which expected_error_mm and radius90_mm are calibrated.", lower_bound=2)
FLAGS = flags.FLAGS

MODEL = "demo"


def banner(text):
    print(f"\n== {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(name: str) -> list[str]:
    """The installed console script, or the module when running from a checkout."""
    script = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "pipelines." + name.split("-", 1)[1]]


def wait_until_available(port: int, server, timeout=120.0):
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"lmk-serve exited with code {server.returncode}")
        try:
            status = stub.GetModelStatus(request, timeout=2.0)
            if any(v.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
                   for v in status.model_version_status):
                return
        except grpc.RpcError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"model {MODEL!r} not AVAILABLE after {timeout:.0f}s")


def main(argv):
    del argv
    import numpy as np

    from lmk_tf.cli import quiet_logs

    quiet_logs()

    from lmk_tf import recipe
    from lmk_tf.data.prepare import mark_outside_missing
    from lmk_tf.data.sources import synthetic_source
    from lmk_tf.io import write_image
    from lmk_tf.method.presets import get_preset
    from lmk_tf.overlay import draw_landmarks
    from lmk_tf.synthetic import landmark_names, make_sample, sample_seed

    t_start = time.time()
    work = os.path.abspath(FLAGS.workdir)
    names = landmark_names(2)
    preset = get_preset("synthetic", 2).with_steps(FLAGS.global_steps, FLAGS.local_steps)
    g, loc = preset.stages

    banner(f"1-3/6 synthesising {FLAGS.num_train} training images (256 x 256 px, 1 mm, {len(names)} landmarks), "
           f"training the global ({g.steps} steps) and local ({loc.steps} steps) stages, exporting one SavedModel")
    samples, _ = synthetic_source(2, FLAGS.num_train, 1)
    validation, _ = synthetic_source(2, FLAGS.num_validation, 99)
    result = recipe.run(preset, work, samples, names, export_to=os.path.join(FLAGS.saved_models, MODEL),
                        calibrate_on=validation, log=lambda line: print(f"   {line}", flush=True))
    version_dir = result.saved_model
    fitted_on = result.calibration["fitted_on"]

    test_dir = os.path.join(work, "test_images")
    os.makedirs(test_dir, exist_ok=True)
    files, truths, images = [], [], []
    for i in range(FLAGS.num_test):
        image, points, _ = make_sample(2, sample_seed(777, i))
        path = os.path.join(test_dir, f"case{i}.mha")
        write_image(image, path)
        files.append(path)
        truths.append(mark_outside_missing(image, points))
        images.append(image)

    config_path = os.path.join(work, "models.config")
    with open(config_path, "w") as f:
        f.write("model_config_list {\n  config {\n"
                f"    name: \"{MODEL}\"\n"
                f"    base_path: \"{os.path.abspath(os.path.join(FLAGS.saved_models, MODEL))}\"\n"
                "    model_platform: \"tensorflow\"\n  }\n}\n")
    port = free_port()
    banner(f"4/6 starting lmk-serve on 127.0.0.1:{port} with {config_path}")
    server = subprocess.Popen(command("lmk-serve") + [f"--model_config_file={config_path}", f"--port={port}",
                                                      "--rest_api_port=0"])
    try:
        wait_until_available(port, server)
        banner(f"5/6 lmk-client --server=127.0.0.1:{port} --model={MODEL} on {len(files)} held-out images")
        proc = subprocess.run(command("lmk-client") + [f"--server=127.0.0.1:{port}", f"--model={MODEL}",
                                                       "--format=json", *files],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"lmk-client failed: {proc.stderr.strip()}")
        results = json.loads(proc.stdout)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    banner("6/6 served landmarks next to the truth")
    all_errors, within = [], []
    for result, truth, image, path in zip(results, truths, images, files):
        print(f"   {os.path.basename(path)}")
        print(f"   {'landmark':<14}{'predicted (row, col) mm':>26}{'truth mm':>22}{'error mm':>10}"
              f"{'expected':>10}{'radius90':>10}  present")
        pred = np.array([lm["index"] for lm in result["landmarks"]])
        for lm, t in zip(result["landmarks"], truth):
            t_mm = t * np.array(image.spacing)
            err = float(np.linalg.norm(np.array(lm["mm"]) - t_mm)) if np.all(np.isfinite(t)) else float("nan")
            if np.isfinite(err) and lm["present"]:
                all_errors.append(err)
            truth_text = "outside image" if not np.all(np.isfinite(t)) else f"({t_mm[0]:.1f}, {t_mm[1]:.1f})"
            mm_text = "({:.1f}, {:.1f})".format(*lm["mm"])
            print(f"   {lm['name']:<14}{mm_text:>26}{truth_text:>22}{err:>10.2f}"
                  f"{lm['expected_error_mm']:>10.2f}{lm['radius90_mm']:>10.2f}  {lm['present']}")
            within.append(bool(np.isfinite(err) and lm["present"] and err <= lm["radius90_mm"]))
        overlay = os.path.join(work, f"overlay_{os.path.splitext(os.path.basename(path))[0]}.png")
        draw_landmarks(image, pred, overlay, names=names, truth_index=truth,
                       present=np.array([lm["present"] for lm in result["landmarks"]]),
                       radius_mm=np.array([lm["radius90_mm"] for lm in result["landmarks"]]))
        print(f"   overlay: {overlay}")
    print(f"\nmean radial error over {len(all_errors)} landmarks: {np.mean(all_errors):.2f} mm "
          f"(brief demo training; benchmarks/synthetic.py trains longer); {sum(within)} of them within "
          f"their radius90 (calibrated on {fitted_on})")
    print(f"demo finished in {time.time() - t_start:.0f}s; model in {version_dir}")


if __name__ == "__main__":
    app.run(main)
