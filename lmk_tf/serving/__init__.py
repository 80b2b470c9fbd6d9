"""Serving: the embedded TF-Serving-compatible server (`server`), its client and in-process use (`local`)."""
