"""The prediction-folder contract (defectkit.predictions): one id rule, one score CSV, one test of
"is this detector YOLO-World" that reads the file, not its name."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest

from defectkit.predictions import (
    CONFIDENCE_FORMAT,
    ScoreRow,
    entries_by_id,
    format_image_scores,
    image_ids,
    is_yolo_world_checkpoint,
)


def _entry(name: str, split: str = "test", label: int = 1) -> SimpleNamespace:
    return SimpleNamespace(name=name, image=f"{name}.png", split=split, defect_type="crack" if label else "good",
                           label=label)


def test_image_ids_are_one_plus_the_manifest_position() -> None:
    entries = [_entry("a"), _entry("b"), _entry("c")]
    assert image_ids(entries) == {"a": 1, "b": 2, "c": 3}
    assert image_ids(entries, key="image") == {"a.png": 1, "b.png": 2, "c.png": 3}
    assert {i: e.name for i, e in entries_by_id(entries).items()} == {1: "a", 2: "b", 3: "c"}


def test_pred_is_decided_on_the_written_score() -> None:
    rows = [ScoreRow.of(_entry("b"), 0.49999999999), ScoreRow.of(_entry("a", label=0), 0.25)]
    text = format_image_scores(rows, threshold=0.5)
    got = list(csv.DictReader(text.splitlines()))
    assert [r["image"] for r in got] == ["a", "b"]  # sorted by name
    assert got[1]["score"] == "0.5" and got[1]["pred"] == "1"  # what eval reads is what pred says
    assert all((float(r["score"]) >= 0.5) == (r["pred"] == "1") for r in got)
    assert format_image_scores(rows, score_format=CONFIDENCE_FORMAT).splitlines()[1] == "a,test,good,0,0.250000"
    with pytest.raises(ValueError, match="b: score is nan"):
        format_image_scores([ScoreRow.of(_entry("b"), float("nan"))])


@pytest.fixture(scope="module")
def ultralytics_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints that refer to ultralytics' WorldModel / DetectionModel classes, under names that
    say nothing (torch.save of the classes: the pickle names them as a real checkpoint does)."""
    import torch

    from defectkit.finetune.yolo_world.env import import_ultralytics

    import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel, WorldModel

    folder = tmp_path_factory.mktemp("ckpt")
    out = {"world": folder / "detector_v3.pt", "closed": folder / "yolov8s-world-ish.pt"}
    torch.save({"model": WorldModel, "epoch": 1}, out["world"])
    torch.save({"model": DetectionModel, "epoch": 1}, out["closed"])  # named "world", is not
    return out


def test_yolo_world_is_read_from_the_checkpoint_not_its_name(ultralytics_checkpoints, tmp_path) -> None:
    assert is_yolo_world_checkpoint(ultralytics_checkpoints["world"]) is True
    assert is_yolo_world_checkpoint(ultralytics_checkpoints["closed"]) is False
    config = tmp_path / "my_detector.yaml"
    config.write_text("nc: 80\nhead:\n  - [[15, 18, 21], 1, WorldDetect, [nc, 512, True]]\n")
    assert is_yolo_world_checkpoint(config) is True
    assert is_yolo_world_checkpoint("yolov8s-worldv2.yaml") is True  # an ultralytics built-in: by name
    assert is_yolo_world_checkpoint("yolov8n.yaml") is False


def test_run_gives_text_embeddings_to_a_world_checkpoint_of_any_name(ultralytics_checkpoints) -> None:
    """``defectkit run`` decides the YOLO-World steps (text embeddings, the random-vectors note)
    from the checkpoint: one named detector_v3.pt is still YOLO-World."""
    from defectkit.pipeline import steps

    assert steps._is_world({"model": str(ultralytics_checkpoints["world"])}) is True
    assert steps._is_world({"model": str(ultralytics_checkpoints["closed"])}) is False
