"""``defectkit run PIPELINE.yaml --set KEY=VALUE``: change a pipeline file's settings from the command line.

``KEY`` is a top-level key (``device``, ``output``) or a dotted path into a section (``sam.epochs``,
``yolo_world.overrides.lr0``); ``VALUE`` is read as YAML, so it is typed like the file (``1`` an
int, ``1.0e-4`` a float, ``cpu`` a string, ``null`` nothing, ``{}`` an empty section). The merged
result is then validated exactly like the file. Relative paths typed here are taken relative to
the current folder (those in the file stay relative to the file's folder).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from defectkit.errors import InputError

#: keys whose values are paths: made absolute against the current folder when given with --set
PATH_KEYS = {("output",), ("dataset",)}
WEIGHTS_KEYS = {("yolo_world", "model"), ("sam", "checkpoint"), ("classifier", "weights"),
                ("text_embeddings", "clip_weights")}


def parse_override(item: str) -> tuple[tuple[str, ...], Any]:
    """``"sam.epochs=1"`` -> ``(("sam", "epochs"), 1)``; InputError naming ``--set`` for a malformed item."""
    import yaml

    key, sep, text = item.partition("=")
    path = tuple(part.strip() for part in key.split("."))
    if not sep or not all(path):
        raise InputError(f"--set {item}: expected KEY=VALUE or SECTION.KEY=VALUE (e.g. sam.epochs=1)")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise InputError(f"--set {item}: the value is not valid YAML ({exc})") from exc
    return path, value


def _cwd_path(path: tuple[str, ...], value: Any) -> Any:
    """A path typed on the command line, made absolute against the current folder."""
    if not isinstance(value, str) or not value:
        return value
    p = Path(value).expanduser()
    if path in PATH_KEYS or (path in WEIGHTS_KEYS and p.exists()):
        return str(p.resolve())
    return value


def apply_overrides(raw: dict[str, Any], items: Sequence[str]) -> dict[str, Any]:
    """A copy of the pipeline mapping ``raw`` with each ``--set`` item applied in order."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for item in items:
        path, value = parse_override(item)
        value = _cwd_path(path, value)
        node = out
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None and depth == 0:
                raise InputError(f"--set {item}: the pipeline has no {part} section (enable it with --set {part}={{}})")
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise InputError(f"--set {item}: {'.'.join(path[: depth + 1])} is not a section")
            node[part] = child = dict(child)
            node = child
        node[path[-1]] = value
    return out
