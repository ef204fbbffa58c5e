"""Errors of the distillation tooling. Messages say what is wrong and where (file, line, directory);
the CLI prints them without a traceback."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """Bad training input or setup: a missing base model, an adapter for another base, no examples left."""


class DatasetError(TrainingError):
    """A teacher-record or example file is missing, empty or malformed; the message names file and line."""
