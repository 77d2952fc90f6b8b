"""A tiny stage runner: each stage has a resolved config, upstream stages and a function.

A stage is skipped when its fingerprint (its own config plus the fingerprints of the stages it
depends on) equals the one recorded after its last successful run and its outputs still exist.
Changing one stage's config therefore re-runs it and everything downstream of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectkit.errors import InputError
from defectkit.fileio import atomic_write_json, read_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One step of the chain.

    name: unique stage name; run: does the work (raises on failure);
    config: JSON-able resolved settings (what the fingerprint covers);
    after: names of upstream stages; outputs: files/folders that must exist for "up to date";
    weights: weight files the stage needs (checked for all stages before anything runs; their
    size and modification time are part of the fingerprint);
    inputs: returns a digest of the input files the stage reads that no upstream stage writes
    (e.g. the dataset's contents), computed when the runner reaches the stage;
    devices: ``(key, device)`` pairs the stage runs on (checked for all stages before anything runs).
    """

    name: str
    run: Callable[[], Any]
    config: dict[str, Any]
    after: tuple[str, ...] = ()
    outputs: tuple[Path, ...] = ()
    weights: tuple[Path, ...] = field(default=())
    inputs: Callable[[], str] | None = None
    devices: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class StageResult:
    name: str
    status: str  # "ran" | "skipped" | "not selected"
    seconds: float


def _file_signature(path: Path) -> list | None:
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _fingerprint(stage: Stage, upstream: dict[str, str], *, selected: bool = True) -> str:
    """Config + upstream fingerprints + the stage's own inputs (content digest, weights' size and
    mtime): a changed input re-runs the stage and, through ``after``, everything downstream."""
    inputs = None
    if stage.inputs is not None:
        try:
            inputs = stage.inputs()
        except InputError:
            if selected:
                raise
    blob = json.dumps(
        {
            "config": stage.config,
            "after": {n: upstream[n] for n in stage.after},
            "inputs": inputs,
            "weights": {str(w): _file_signature(w) for w in stage.weights},
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def weights_problem(stages: Sequence[Stage]) -> str | None:
    """One line listing every missing weights file of every stage (and the fetch command), or None."""
    from defectkit.weights.registry import lookup

    absent = [(s.name, Path(w)) for s in stages for w in s.weights if not Path(w).is_file()]
    if not absent:
        return None
    names = [e.name for _, w in absent if (e := lookup(w.name))]
    fetch = f"; `defectkit weights fetch {' '.join(names)}` brings the known ones" if names else ""
    return f"{len(absent)} weights file(s) missing: " + "; ".join(f"{name}: {w}" for name, w in absent) + fetch


def device_problems(stages: Sequence[Stage]) -> list[str]:
    """Each device (with its YAML key) that this machine lacks."""
    from defectkit.devices import check_device

    problems = []
    for key, device in dict(pair for s in stages for pair in s.devices).items():
        try:
            check_device(device, key)
        except InputError as exc:
            problems.append(str(exc))
    return problems


def check_stages(stages: Sequence[Stage]) -> None:
    """Raise one InputError naming every unavailable device and missing weights file, before anything runs."""
    problems = [*device_problems(stages), *filter(None, [weights_problem(stages)])]
    if problems:
        raise InputError("; ".join(problems))


def run_stages(stages: Sequence[Stage], state_dir: Path, *, from_stage: str | None = None,
               only: str | None = None, on_stage: Callable[[str], Any] | None = None) -> list[StageResult]:
    """Run ``stages`` in order, skipping up-to-date ones.

    from_stage: force this stage and every later one to run (earlier ones are skipped if up to date);
    only: run just this stage (its upstream outputs must exist);
    on_stage: called with a stage's name just before it runs (so a caller can tell which one failed).
    """
    names = [s.name for s in stages]
    for flag, value in (("--from", from_stage), ("--only", only)):
        if value is not None and value not in names:
            raise InputError(f"{flag} {value}: unknown stage (stages: {', '.join(names)})")
    check_stages([s for s in stages if only is None or s.name == only])
    keys: dict[str, str] = {}
    results: list[StageResult] = []
    forced = False
    for stage in stages:
        key = _fingerprint(stage, keys, selected=only is None or stage.name == only)
        keys[stage.name] = key
        forced = forced or stage.name == from_stage
        stamp = state_dir / f"{stage.name}.json"
        if only is not None and stage.name != only:
            results.append(StageResult(stage.name, "not selected", 0.0))
            continue
        previous = read_json(stamp).get("fingerprint") if stamp.is_file() else None
        up_to_date = previous == key and all(Path(o).exists() for o in stage.outputs)
        if up_to_date and not forced and only is None:
            log.info("stage %s: up to date, skipped", stage.name)
            results.append(StageResult(stage.name, "skipped", 0.0))
            continue
        log.info("stage %s: running", stage.name)
        if on_stage is not None:
            on_stage(stage.name)
        stamp.unlink(missing_ok=True)  # a stage killed while running is never "up to date" later
        start = time.perf_counter()
        stage.run()
        seconds = time.perf_counter() - start
        atomic_write_json(stamp, {"stage": stage.name, "fingerprint": key, "config": stage.config})
        results.append(StageResult(stage.name, "ran", seconds))
        log.info("stage %s: done in %.1f s", stage.name, seconds)
    return results
