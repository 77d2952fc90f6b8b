"""Atomic file writing, checked reading and content hashing shared by every stage.

Every output file is written to a temporary file in the destination folder and moved into place
with ``os.replace``, so an interrupted command leaves the previous output intact; a folder that must
change as a whole is built beside it and swapped in (:func:`atomic_dir`), or marked incomplete while
it is rewritten (:func:`mark_incomplete`). Every JSON / YAML / text input is read through
:func:`read_text`, so a missing, non-UTF-8 or malformed file is one InputError naming it.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from defectkit.errors import WRITE_ERRNOS, InputError, OutputError, describe_os_error, os_error_in


def check_output_dir(path: str | os.PathLike) -> Path:
    """InputError naming ``path`` when it cannot become an output folder (a file is there or above
    it, or the place is not writable); creates nothing, so commands call it before any work."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise InputError(f"{p}: exists and is not a folder (an output folder is needed here)")
        if not os.access(p, os.W_OK | os.X_OK):
            raise InputError(f"{p}: output folder is not writable")
        return p
    ancestor = next((a for a in p.absolute().parents if a.exists()), None)
    if ancestor is not None and not ancestor.is_dir():
        raise InputError(f"{p}: cannot create output folder ({ancestor} is a file, not a folder)")
    if ancestor is not None and not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{p}: cannot create output folder ({ancestor} is not writable)")
    return p


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) if needed; raise InputError naming it when impossible."""
    p = check_output_dir(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{p}: cannot create output folder ({exc.strerror or exc})") from exc
    return p


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` when it is an existing file, else InputError naming it. Commands call it on the files
    they were handed before importing torch or doing any work, so a typo is reported at once."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: {what} expected, found a folder")
    if not p.is_file():
        raise InputError(f"{p}: {what} not found")
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temp file next to ``path`` for writing; on success move it onto ``path``.

    On any exception the temp file is removed and ``path`` is left untouched.
    ``mode`` must be a write mode ("w", "wb", "w+", ...).
    """
    if "w" not in mode:
        raise ValueError(f"atomic_open needs a write mode, got {mode!r}")
    dest = Path(path)
    ensure_dir(dest.parent)
    if dest.is_dir():
        raise InputError(f"{dest}: is a folder; give the path of the file to write")
    remove_stale_temps(dest)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{os.getpid()}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise InputError(f"{dest}: cannot write here ({exc.strerror or exc})") from exc
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise_output_error(exc, dest)
        raise


def raise_output_error(exc: BaseException, dest: str | os.PathLike) -> None:
    """Raise an OutputError naming ``dest`` when ``exc`` is (or wraps) a failed write that is the
    output location's fault (full disk, read-only, quota); return otherwise so the caller re-raises."""
    err = os_error_in(exc)
    if err is not None and err.errno in WRITE_ERRNOS:
        raise OutputError(describe_os_error(err, dest)) from exc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    return True


def remove_stale_temps(dest: str | os.PathLike) -> None:
    """Delete the temp files and folders (``.<name>.<pid>.*tmp``) that a killed writer of ``dest``
    left next to it; those of a writer still running are left alone. A folder swap killed between
    its two renames left the old folder as ``.<name>.<pid>.old.tmp``: it is put back."""
    dest = Path(dest)
    ours = re.compile(rf"\.{re.escape(dest.name)}\.(\d+)\.(?:[a-z0-9_]{{8}}\.|old\.)?tmp")
    for stale in dest.parent.glob(f".{glob.escape(dest.name)}.*tmp"):
        match = ours.fullmatch(stale.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            if stale.name.endswith(".old.tmp") and not dest.exists():
                os.replace(stale, dest)
            elif stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder's new contents in a sibling temp folder, then swap it in for ``path``: readers
    see the old folder or the new one, whole, never a mix of both. On an exception (or a kill) the
    old folder stays; the next writer removes the temp folder a killed run left."""
    dest = Path(path)
    ensure_dir(dest.parent)
    if dest.exists() and not dest.is_dir():
        raise InputError(f"{dest}: exists and is not a folder (an output folder is needed here)")
    remove_stale_temps(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{os.getpid()}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if dest.exists():
            old = dest.with_name(f".{dest.name}.{os.getpid()}.old.tmp")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise_output_error(exc, dest)
        raise


INCOMPLETE = ".defectkit-incomplete"


def mark_incomplete(folder: str | os.PathLike, command: str) -> None:
    """Mark ``folder`` as being (re)written by ``command``; :func:`mark_complete` removes the mark.
    A folder a killed or failed run left half-updated keeps the mark, and readers refuse it."""
    atomic_write_text(Path(folder) / INCOMPLETE, f"{command} did not finish writing this folder\n")


def mark_complete(folder: str | os.PathLike) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(Path(folder) / INCOMPLETE)


def check_complete(path: str | os.PathLike, levels: int = 2) -> None:
    """InputError when ``path`` or one of its ``levels`` parent folders carries the incomplete
    mark (e.g. ``LABELS/coco/test.json`` of a convert that was killed)."""
    p = Path(path)
    for folder in [p, *p.parents][: levels + 1]:
        mark = folder / INCOMPLETE
        if mark.is_file():
            what = mark.read_text(encoding="utf-8", errors="replace").strip()
            raise InputError(f"{folder}: incomplete output ({what}); run that command again")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (``\\n`` line endings) and return the path."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    return Path(path)


def dumps_json(obj: Any, *, indent: int | None = 2) -> str:
    """Deterministic JSON text: sorted keys are NOT forced (callers control order), no NaN."""
    return json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically. NaN/inf are refused (ValueError)."""
    return atomic_write_text(path, dumps_json(obj, indent=indent))


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """A UTF-8 text file's contents (a leading BOM is dropped); InputError naming the file when it is
    missing, a folder, unreadable or not UTF-8. Every JSON / YAML / CSV reader goes through here."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError(f"{p}: {what} not found") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{p}: {what} expected, found a folder") from exc
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{p}: {what} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from exc
    except OSError as exc:
        raise InputError(f"{p}: cannot read {what} ({exc.strerror or exc})") from exc


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read a JSON file, raising InputError naming the file when missing, not UTF-8 or malformed,
    or holding NaN / Infinity (Python's json accepts them; no other tool does)."""
    p = Path(path)
    text = read_text(p, what)

    def refuse(name: str) -> None:
        at = re.search(rf"(?<![\w\"]){re.escape(name)}(?![\w\"])", text)
        line = f"line {text.count(chr(10), 0, at.start()) + 1}: " if at else ""
        raise InputError(
            f"{p}: {line}{name} is not a number JSON allows (scores and coordinates must be finite)"
        )

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def read_yaml(path: str | os.PathLike, what: str = "YAML file") -> Any:
    """Read a YAML file (``yaml.safe_load``: no Python objects), InputError naming the file when
    missing, not UTF-8 or malformed. An empty file reads as None."""
    import yaml

    p = Path(path)
    text = read_text(p, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{p}: not valid YAML ({problem}{at})") from exc


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
