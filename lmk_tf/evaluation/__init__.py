"""Errors, summaries, tables, plots and the evaluation report of a model."""
