"""lmk_tf.cli: commands start without TensorFlow's native start-up chatter on stderr."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tensorflow_start_up_and_first_op_write_nothing_to_stderr():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = ("from lmk_tf import cli; cli.import_tensorflow_quietly()\n"
            "import tensorflow as tf\n"
            "print(float(tf.constant(1.0) + 1.0))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "2.0"
    assert p.stderr == ""


def test_debug_log_level_leaves_the_import_to_the_caller():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    code = "from lmk_tf import cli; cli.import_tensorflow_quietly()\nimport sys\nprint('tensorflow' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr
