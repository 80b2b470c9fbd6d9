"""Batch prediction of whole archives on Apache Beam (`lmk-batch`).

`handler` holds the RunInference ModelHandler (one SavedModel per worker,
called through `lmk_tf.serving.local.LocalModel`), `pipeline` the pipeline
from file paths to JSON Lines and its errors output. See docs/batch.md.
"""
