"""Shared test set-up: quiet TensorFlow, and no test may need ../shared."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
