"""Test helper: LABELS/coco/{train,val,test}.json written by the project's own converter."""

from __future__ import annotations

from pathlib import Path

import pytest


def convert_coco(dataset: str | Path, split: str | Path, labels: str | Path) -> dict[str, Path]:
    """Run ``defectkit convert --to coco`` (library call) and return {split: coco json path}."""
    from defectkit.converters.convert import ConvertConfig, convert_dataset

    convert_dataset(
        ConvertConfig(dataset=str(dataset), split=str(split), output=str(labels), formats=("coco",))
    )
    return {s: Path(labels) / "coco" / f"{s}.json" for s in ("train", "val", "test")}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: 2 intra-op threads spin against each other and other
    processes (measured: 35 tests 740 s wall / 476 s CPU with 2 threads, 57 s / 25 s with 1)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
