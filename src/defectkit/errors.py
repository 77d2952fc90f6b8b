"""Exceptions that the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations


class DefectkitError(Exception):
    """Base class of every error defectkit raises on purpose."""


class InputError(DefectkitError, ValueError):
    """Bad user input: a file, folder, flag or config value that cannot be used.

    The message must name the offending file (or flag) and say what is wrong, e.g.
    ``"data/bottle/test/broken_large/003.png: no mask ground_truth/broken_large/003_mask.png"``.
    """


class OutputError(DefectkitError):
    """An output could not be written (full disk, read-only file system, quota): the message names
    the file; the earlier output, if any, is left as it was. Exit code 2, like InputError."""


#: errno values that mean "the output location cannot take this file" (not a bug in defectkit).
WRITE_ERRNOS = frozenset({28, 30, 27, 122, 5})  # ENOSPC, EROFS, EFBIG, EDQUOT, EIO


def os_error_in(exc: BaseException) -> OSError | None:
    """The OSError that ``exc`` is or was raised while handling (torch wraps a failed write of
    ``torch.save`` in a RuntimeError whose context is the real OSError); None when there is none."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, OSError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def describe_os_error(exc: OSError, path: object = None) -> str:
    """``"<file>: <reason>"`` for a failed read or write; a full disk is named as such."""
    where = path if path is not None else (exc.filename or "output")
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == 28:
        reason += " (disk full: free space and run the command again)"
    return f"{where}: {reason}"


class MissingWeightsError(InputError):
    """A weights file the user asked for (explicitly or by name) is not on disk."""


def __getattr__(name: str):
    """``make_config`` and ``check_no_bool_for_number`` moved to :mod:`defectkit.runtime`; the old
    import path keeps working for one release."""
    if name in ("make_config", "check_no_bool_for_number"):
        from defectkit import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
