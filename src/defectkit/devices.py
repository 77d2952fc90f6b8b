"""Device strings checked before any work starts, and translated between torch and ultralytics.

torch takes ``cpu``, ``cuda``, ``cuda:N`` (and ``mps``); ultralytics takes ``cpu``, ``N`` or ``N,M,...``
(one process per GPU). A pipeline's top-level ``device:`` may use either form; each section gets the
form its library takes (:func:`for_torch`, :func:`for_ultralytics`).
"""

from __future__ import annotations

from defectkit.errors import InputError

AUTO = (None, "", "auto")


def gpu_indices(device: str | None) -> list[int] | None:
    """The CUDA device indices ``device`` asks for ([] for plain ``cuda``), None when it asks for no GPU.

    Raises InputError for a string that is no device."""
    text = "" if device is None else str(device).strip().lower()
    if text in AUTO or text in ("cpu", "mps"):
        return None
    if text == "cuda" or text == "-1":  # -1: ultralytics picks the idlest GPU
        return []
    body = text.removeprefix("cuda:")
    parts = [p.strip() for p in body.split(",")]
    if not all(p.isdigit() for p in parts):
        raise InputError(f"device {device!r}: expected cpu, cuda, cuda:N, mps, or GPU indices such as 0 or 0,1")
    return [int(p) for p in parts]


def check_device(device: str | None, flag: str = "--device") -> None:
    """InputError (one line, naming ``flag``) when ``device`` asks for hardware this machine lacks."""
    indices = gpu_indices(device)
    if str(device).strip().lower() == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise InputError(f"{flag} {device}: MPS is not available on this machine (use {flag} cpu)")
        return
    if indices is None:
        return
    import torch

    if not torch.cuda.is_available():
        raise InputError(f"{flag} {device}: CUDA is not available on this machine (use {flag} cpu)")
    count = torch.cuda.device_count()
    bad = [i for i in indices if i >= count]
    if bad:
        raise InputError(f"{flag} {device}: no GPU {bad[0]} on this machine ({count} GPU(s): 0..{count - 1})")


def for_torch(device: str) -> str:
    """``device`` as torch takes it: ``0`` / ``0,1`` -> ``cuda:0`` (the first GPU; torch sections use one)."""
    indices = gpu_indices(device)
    if indices is None or str(device).startswith("cuda"):
        return str(device)
    return f"cuda:{indices[0]}" if indices else "cuda"


def for_ultralytics(device: str) -> str:
    """``device`` as ultralytics takes it: ``cuda`` -> ``0``, ``cuda:N`` -> ``N``; others unchanged."""
    indices = gpu_indices(device)
    if indices is None or str(device).strip() == "-1":
        return str(device)
    return ",".join(str(i) for i in indices) or "0"
