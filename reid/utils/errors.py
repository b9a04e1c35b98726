"""Errors that are the user's to fix: a wrong config, dataset layout, checkpoint or device.

The tools (``tools/train.py``, ``tools/test.py``, ``reid-train``, ``reid-test``) print such an
error as one or two lines and exit with status 2; any other exception is a bug and keeps its
traceback. Each class also derives from the built-in exception that code caught before this
hierarchy existed (``ValueError``, ``KeyError``, ``FileNotFoundError``, ``RuntimeError``), so
``except ValueError`` still works.
"""
from __future__ import annotations

__all__ = [
    "CheckpointError", "CheckpointNotFoundError", "CheckpointReadError", "ConfigError",
    "ConfigKeyError", "DatasetError", "DeviceError", "MissingExtraError", "TrainingDivergedError",
    "UserError",
]


class UserError(Exception):
    """Base of the errors the user fixes (bad input, not a bug): printed without traceback."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ConfigError(UserError, ValueError):
    """An invalid config value, file or combination of keys (the message names the key)."""


class ConfigKeyError(ConfigError, KeyError):
    """A config key that does not exist (on the command line or in a YAML file)."""


class DatasetError(UserError, FileNotFoundError):
    """A dataset folder is missing or does not have the expected layout."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that does not fit the model (missing, unexpected or mis-shaped tensors)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint or weights file that does not exist."""


class CheckpointReadError(CheckpointError, RuntimeError):
    """A file that cannot be read as a checkpoint (truncated, not a torch file...)."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency is not installed (the message names the ``pip install`` extra)."""


class DeviceError(UserError, RuntimeError):
    """The requested device is not available."""


class TrainingDivergedError(UserError, FloatingPointError):
    """Training produced a non-finite loss, gradient or feature; the last good checkpoint is
    kept."""
