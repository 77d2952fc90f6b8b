"""Exceptions that the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations


class DefectkitError(Exception):
    """Base class of every error defectkit raises on purpose."""


class InputError(DefectkitError, ValueError):
    """Bad user input: a file, folder, flag or config value that cannot be used.

    The message must name the offending file (or flag) and say what is wrong, e.g.
    ``"data/bottle/test/broken_large/003.png: no mask ground_truth/broken_large/003_mask.png"``.
    """


class MissingWeightsError(InputError):
    """A weights file the user asked for (explicitly or by name) is not on disk."""


def make_config(cls, where: str, /, **fields):
    """``cls(**fields)`` for a config dataclass; a ValueError from its validation becomes an
    InputError ``"<where>: <message>"`` (where = the command, e.g. ``"predict sam"``)."""
    try:
        return cls(**fields)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from exc
