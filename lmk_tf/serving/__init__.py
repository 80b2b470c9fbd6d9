"""Serving: the embedded TF-Serving-compatible server, its client and in-process use.

Modules (each importable on its own; TensorFlow is imported where it is needed):

* `model_config` - TF Serving's models.config text format, parsed with the real proto.
* `validation` - a request checked against the loaded signature before TensorFlow runs.
* `servable` - one loaded SavedModel version (signatures, metadata, warm-up).
* `manager` - versions loaded per model by policy, file-system and config polling.
* `grpc_server`, `rest_server` - TF Serving's gRPC and REST APIs over a manager.
* `client` - requests with the stock stubs; results shaped and formatted.
* `server` - models + gRPC + REST until stopped (what lmk-serve runs).
* `local` - the same signature called in-process (lmk-predict, benchmarks).
"""
