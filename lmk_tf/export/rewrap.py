"""A version exported before `serving_batch`/`serving_encoded` existed, given them without retraining.

The old version is loaded and its `serving_default` (the whole composed graph, with its
variables) is held by a new module that adds the two signatures around it
(`signatures.py`), so they answer exactly as the old graph does. Its other signatures,
assets and warm-up file are carried over unchanged.
"""

from __future__ import annotations

import os
import shutil

import tensorflow as tf

from lmk_tf.errors import ConfigError, ModelError
from lmk_tf.export import contract
from lmk_tf.export.signatures import batch_signature, encoded_signature


def add_signatures(source_dir: str, target_dir: str) -> str:
    """Writes `source_dir` (a version directory) plus the signatures it lacks to `target_dir`."""
    if os.path.exists(target_dir):
        raise ConfigError(f"{target_dir} already exists; versions are immutable")
    loaded = tf.saved_model.load(source_dir)
    if contract.DEFAULT_SIGNATURE not in loaded.signatures:
        raise ModelError(f"{source_dir}: has no {contract.DEFAULT_SIGNATURE} signature")
    serve = loaded.signatures[contract.DEFAULT_SIGNATURE]
    ndim = serve.structured_input_signature[1][contract.SPACING].shape[0]
    module = tf.Module()
    module.loaded = loaded  # tracked: its variables are saved again
    signatures = dict(loaded.signatures)
    if contract.BATCH_SIGNATURE not in signatures:
        module.serve_batch = batch_signature(serve, ndim)
        signatures[contract.BATCH_SIGNATURE] = module.serve_batch.get_concrete_function()
    if ndim == 2 and contract.ENCODED_SIGNATURE not in signatures:
        module.serve_encoded = encoded_signature(serve)
        signatures[contract.ENCODED_SIGNATURE] = module.serve_encoded.get_concrete_function()
    tmp = f"{target_dir}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tf.saved_model.save(module, tmp, signatures=signatures)
        for extra in ("assets", "assets.extra"):
            if os.path.isdir(os.path.join(source_dir, extra)):
                shutil.copytree(os.path.join(source_dir, extra), os.path.join(tmp, extra), dirs_exist_ok=True)
        os.rename(tmp, target_dir)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target_dir
