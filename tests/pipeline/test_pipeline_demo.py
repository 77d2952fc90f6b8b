"""``defectkit demo``: the default run's learning targets (slow) and the stage wiring (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectkit.pipeline.demo import DemoConfig, demo_pipeline
from defectkit.pipeline.run import build_stages, check_sections


def test_demo_configs_are_valid_and_complete(tmp_path: Path) -> None:
    for fast in (False, True):
        cfg = demo_pipeline(DemoConfig(output=tmp_path, fast=fast))
        check_sections(cfg, "demo")
        names = [s.name for s in build_stages(cfg)]
        assert names == ["synth", "describe", "split", "convert", "text_embeddings", "yolo_world_train",
                         "yolo_world_predict", "sam_train", "sam_predict_gt", "sam_predict_detections",
                         "classifier_train", "classifier_predict", "autoencoder_train", "autoencoder_predict",
                         "eval"]
        assert cfg.split == {"defects_to_train": 5, "val_fraction": 0.2, "seed": 0}
        assert cfg.text_embeddings == {"random_seed": 0}  # seeded random, said so in the report
        assert all(s.weights == () for s in build_stages(cfg))  # the demo needs no weights file


@pytest.mark.slow
def test_default_demo_models_visibly_learn(run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli("demo", "-o", tmp_path / "demo")
    assert code == 0, err
    assert "report:" in out and "Model" in out
    report = json.loads((tmp_path / "demo" / "report" / "report.json").read_text())
    models = {m["name"]: m for m in report["models"]}
    assert models["ResNet"]["image"]["accuracy"] >= 0.9
    assert models["AutoEncoder"]["image"]["auroc"] >= 0.9
    assert models["YOLO-World"]["box"]["AP50"] >= 0.5
    assert models["SAM (GT boxes)"]["mask"]["iou"] >= 0.6
    code, out, _ = run_cli("demo", "-o", tmp_path / "demo")  # everything up to date: all stages skipped
    assert code == 0 and " ran" not in out.splitlines()[0]
