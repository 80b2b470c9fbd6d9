"""Serving: the embedded TF-Serving-compatible server, its client and in-process use.

`model_config` (models.config), `validation` (a request against the signature),
`servable` (one loaded version), `manager` (versions per model, polling),
`grpc_server` and `rest_server` (TF Serving's APIs), `tls`, `server` (what
lmk-serve runs), `client` (the stock stubs), `local` (in-process, lmk-predict).
"""
