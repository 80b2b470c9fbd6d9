"""Trained stages -> one SavedModel, and the served contract every client relies on."""
