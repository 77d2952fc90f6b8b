"""What every command shares at run time, whatever the stage: typed configs from CLI values
(:func:`make_config`), logging set-up, seeding and RNG state, device choice, run folders with the
resolved config and library versions, and safe checkpoint save / load / sniffing.

Used by datasets, converters, eval, annotate, pipeline and finetune alike, so none of them depends
on the training package for these. Imports torch lazily inside functions, so importing this
module stays cheap.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import pickletools
import platform
import random
import sys
import zipfile
from pathlib import Path
from typing import Any

from defectkit.errors import InputError
from defectkit.fileio import atomic_open, atomic_write_json, ensure_dir

log = logging.getLogger(__name__)


def check_no_bool_for_number(cls, where: str, fields: dict) -> None:
    """InputError when a true/false is given for a number field (``epochs: true`` would train one
    epoch: Python counts a bool as the integer 1)."""
    import typing

    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: nothing to check against
        return
    for name, value in fields.items():
        hint = hints.get(name)
        allowed = set(typing.get_args(hint)) or {hint}
        if isinstance(value, bool) and bool not in allowed and allowed & {int, float}:
            raise InputError(f"{where}: {name}: expected a number, got {str(value).lower()}")


def make_config(cls, where: str, /, **fields):
    """``cls(**fields)`` for a config dataclass; a ValueError from its validation becomes an
    InputError ``"<where>: <message>"`` (where = the command, e.g. ``"predict sam"``); a bool for a
    number field is refused."""
    check_no_bool_for_number(cls, where, fields)
    try:
        return cls(**fields)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from exc


def setup_logging(verbosity: int) -> None:
    """verbosity: 0 = INFO, >0 = DEBUG, <0 = WARNING (-q) or ERROR (-qq)."""
    level = {1: logging.DEBUG, 0: logging.INFO, -1: logging.WARNING}.get(
        max(-2, min(1, verbosity)), logging.ERROR
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname).1s %(name)s: %(message)s"))
    root = logging.getLogger("defectkit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    for noisy in ("ultralytics", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def setup_output(verbosity: int, *, quiet: bool = False) -> None:
    """The CLI's output set-up, once per command: log level (:func:`setup_logging`), progress bars
    (off with ``-q``, else shown on a terminal) and albumentations' import-time version check off
    (it would ask the package index)."""
    from defectkit.progress import set_progress_enabled

    setup_logging(verbosity)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    set_progress_enabled(False if quiet else None)


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (CPU and CUDA); optionally ask torch for deterministic kernels."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


#: glibc ``mallopt`` parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def reuse_freed_memory(max_block: int = 32 * 2**20) -> bool:
    """Have glibc's malloc keep freed blocks of up to ``max_block`` bytes for reuse (process-wide).

    A CPU training step allocates and frees the same tensors of a few MiB every step. With glibc's
    defaults each of them is a fresh memory mapping, unmapped again on free, so every step pays a page
    fault per 4 KiB on first touch (~10 % of a vit_b SAM decoder step, ``benchmarks/sam_bench.py``).
    This sets ``M_MMAP_THRESHOLD`` to ``max_block`` (the most glibc allows on 64-bit) and
    ``M_TRIM_THRESHOLD`` to 4x that, which is roughly what jemalloc / tcmalloc (the allocators
    PyTorch's CPU tuning guide suggests preloading) do by design. The cost is that freed memory is
    returned to the system later. Returns False (and changes nothing) where the C library is not glibc.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, max_block) == 1 and mallopt(_M_TRIM_THRESHOLD, 4 * max_block) == 1
    log.debug("glibc malloc keeps freed blocks up to %d bytes: %s", max_block, done)
    return done


def epochs_for_budget(steps: int, epochs: int, batches_per_epoch: int) -> int:
    """Training length in whole epochs: ``epochs`` when > 0, else ceil(steps / batches_per_epoch).

    A budget in optimiser steps means the same amount of training on a 19-image sample and on a
    209-image category; epochs would shrink and grow with the data. At least 1.
    """
    if epochs > 0:
        return int(epochs)
    return max(1, math.ceil(steps / max(1, batches_per_epoch)))


def resolve_device(device: str | None = None):
    """``None``/"auto" -> cuda if available else cpu; "cpu", "cuda", "cuda:N" as given.

    Raises InputError when CUDA is asked for but not available.
    """
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    return dev


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape results (only those already importable)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("defectkit", "torch", "torchvision", "numpy", "ultralytics", "segment-anything",
                 "pycocotools", "scikit-learn", "albumentations", "opencv-python-headless"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as a JSON-safe dict (Paths become strings, tuples lists)."""

    def conv(v: Any) -> Any:
        if isinstance(v, os.PathLike):
            return os.fspath(v)
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        return v

    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return {k: conv(v) for k, v in data.items()}


def prepare_run_dir(run_dir: str | os.PathLike, config: Any, *, name: str = "config.json") -> Path:
    """Create the run folder and write the resolved config (plus versions) next to the results."""
    out = ensure_dir(run_dir)
    atomic_write_json(out / name, {"config": config_to_dict(config), "versions": library_versions()})
    return out


def save_checkpoint(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file in the same folder, then ``os.replace`` onto ``path``."""
    import torch

    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)


def _legacy_numpy_globals() -> list:
    """The numpy array reconstructors older defectkit checkpoints pickled (numpy RNG state).
    Allowlisting them keeps ``weights_only=True`` loading: they build arrays, they run no code."""
    import numpy as np

    multiarray = getattr(np, "_core", None) or np.core
    return [multiarray.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_checkpoint(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``: tensors, numbers, strings and
    plain containers only, so a crafted file cannot run code. InputError naming a missing, corrupt
    or code-carrying file. Every torch file a user hands over is read here (``what`` names it)."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: is a folder, not a {what}" if p.is_dir() else f"{p}: {what} not found")
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(
            f"{p}: not a plain weights file (it needs Python objects beyond tensors, numbers and "
            "strings; defectkit does not unpickle code from a file it is handed)"
        ) from exc
    except Exception as exc:  # torch raises many types for corrupt files
        raise InputError(f"{p}: cannot load {what} ({type(exc).__name__}: {_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING"}
)


def pickled_globals(path: str | os.PathLike) -> set[str]:
    """``module.name`` of every class or function a torch (zip format) checkpoint refers to,
    read from its pickle opcodes without unpickling it: sniffing a file's kind runs none of its code.
    InputError for a file that is not a torch zip archive."""
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as zf:
            member = next(n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl"))
            ops = list(pickletools.genops(zf.read(member)))
    except (OSError, zipfile.BadZipFile, StopIteration, ValueError) as exc:
        raise InputError(f"{p}: not a torch checkpoint (no zip archive with data.pkl inside)") from exc
    found: set[str] = set()
    strings: list[str | None] = []
    memo: dict[int, str | None] = {}
    for op, arg, _ in ops:
        if op.name in _STRING_OPS:
            strings.append(str(arg))
        elif op.name == "MEMOIZE":
            memo[len(memo)] = strings[-1] if strings else None
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = strings[-1] if strings else None
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            strings.append(memo.get(int(arg)))
        elif op.name == "GLOBAL":
            found.add(str(arg).replace(" ", "."))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.add(f"{strings[-2]}.{strings[-1]}")
    return found


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states, for exact resume (plain types and tensors only, so the
    checkpoint loads with ``weights_only=True``)."""
    import numpy as np
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    npst = state["numpy"]
    if isinstance(npst, dict):
        keys = np.asarray(npst["keys"].numpy(), dtype=np.uint32)
        npst = (npst["bit_generator"], keys, npst["pos"], npst["has_gauss"], npst["cached_gaussian"])
    np.random.set_state(npst)  # a tuple: checkpoints written before the plain-type format
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
