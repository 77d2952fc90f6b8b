"""The stage runner: skip when up to date, re-run what changed and everything downstream."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectkit.errors import InputError
from defectkit.pipeline.stages import Stage, run_stages


def _chain(tmp_path: Path, calls: list[str], a_cfg: int = 1, b_cfg: int = 1) -> list[Stage]:
    def make(name: str):
        def run() -> None:
            calls.append(name)
            (tmp_path / f"{name}.out").write_text(name)
        return run

    return [
        Stage("a", make("a"), {"x": a_cfg}, outputs=(tmp_path / "a.out",)),
        Stage("b", make("b"), {"y": b_cfg}, after=("a",), outputs=(tmp_path / "b.out",)),
        Stage("c", make("c"), {}, after=("b",), outputs=(tmp_path / "c.out",)),
    ]


def test_skip_rerun_and_downstream(tmp_path: Path) -> None:
    state = tmp_path / "state"
    calls: list[str] = []
    res = run_stages(_chain(tmp_path, calls), state)
    assert calls == ["a", "b", "c"] and [r.status for r in res] == ["ran"] * 3
    calls.clear()
    res = run_stages(_chain(tmp_path, calls), state)
    assert calls == [] and [r.status for r in res] == ["skipped"] * 3
    run_stages(_chain(tmp_path, calls, b_cfg=2), state)
    assert calls == ["b", "c"]  # a unchanged; b changed; c depends on b
    calls.clear()
    (tmp_path / "c.out").unlink()  # a deleted output re-runs that stage
    run_stages(_chain(tmp_path, calls, b_cfg=2), state)
    assert calls == ["c"]


def test_from_and_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    calls: list[str] = []
    run_stages(_chain(tmp_path, calls), state)
    calls.clear()
    run_stages(_chain(tmp_path, calls), state, from_stage="b")
    assert calls == ["b", "c"]
    calls.clear()
    res = run_stages(_chain(tmp_path, calls), state, only="a")
    assert calls == ["a"] and [r.status for r in res] == ["ran", "not selected", "not selected"]
    with pytest.raises(InputError, match="--only zz: unknown stage"):
        run_stages(_chain(tmp_path, calls), state, only="zz")


def test_missing_weights_reported_all_at_once_before_running(tmp_path: Path) -> None:
    calls: list[str] = []
    stages = _chain(tmp_path, calls)
    stages[1] = Stage("b", lambda: calls.append("b"), {}, after=("a",), weights=(tmp_path / "sam_vit_b_01ec64.pth",))
    stages[2] = Stage("c", lambda: calls.append("c"), {}, weights=(tmp_path / "yolov8s-worldv2.pt",))
    with pytest.raises(InputError, match=r"2 weights file\(s\) missing: b: .*sam_vit_b_01ec64\.pth; c: .*yolov8s-worldv2\.pt"):
        run_stages(stages, tmp_path / "state")
    assert calls == []
