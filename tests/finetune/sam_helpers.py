"""Test helper: LABELS/coco/{train,val,test}.json written by the project's own converter."""

from __future__ import annotations

from pathlib import Path


def convert_coco(dataset: str | Path, split: str | Path, labels: str | Path) -> dict[str, Path]:
    """Run ``defectkit convert --to coco`` (library call) and return {split: coco json path}."""
    from defectkit.converters.convert import ConvertConfig, convert_dataset

    convert_dataset(
        ConvertConfig(dataset=str(dataset), split=str(split), output=str(labels), formats=("coco",))
    )
    return {s: Path(labels) / "coco" / f"{s}.json" for s in ("train", "val", "test")}
