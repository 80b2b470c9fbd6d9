"""Moved to lmk_tf.io.model_input (what commands send to a model); kept for its importers."""

from lmk_tf.io.model_input import parse_spacing, read_files_for_model, read_image_for_model  # noqa: F401
