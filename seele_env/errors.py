"""The error hierarchy of ``seele_env``.

Every message names the bad value and says how to fix it.
"""

from __future__ import annotations


class SeeleError(Exception):
    """Base class of every error raised on purpose by ``seele_env``."""


class DatasetError(SeeleError, ValueError):
    """A dataset could not be loaded: unknown name, missing file, no usable row, bad mapping."""


class HintError(SeeleError, ValueError):
    """A hint was asked that cannot be given (bad rate, problem without a solution, bad unit)."""


class EnvUsageError(SeeleError, RuntimeError):
    """The environment was used out of order or with a bad argument (``step`` before ``reset``)."""
