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


@pytest.fixture(scope="module", params=[0, 1, 2], ids=lambda s: f"seed{s}")
def default_demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The default demo for seeds 0, 1 and 2, each run once for the slow checks below (about 10
    minutes each on 2 cores)."""
    from defectkit.cli import main

    out = tmp_path_factory.mktemp("demo") / f"demo_seed{request.param}"
    assert main(["-q", "demo", "-o", str(out), "--seed", str(request.param)]) == 0
    report = json.loads((out / "report" / "report.json").read_text())
    return out, {m["name"]: m for m in report["models"]}


def test_target_misses_reads_the_report_rows() -> None:
    from defectkit.pipeline.demo import DEMO_TARGETS, target_misses

    models = {row: {group: {metric: minimum}} for row, group, metric, minimum in DEMO_TARGETS}
    assert target_misses(models) == []
    models["YOLO-World"]["box"]["AP50"] = 0.2
    del models["ResNet"]
    assert target_misses(models) == ["ResNet accuracy None < 0.78", "YOLO-World AP50 0.2 < 0.25"]


@pytest.mark.slow
def test_default_demo_meets_its_learning_targets(default_demo) -> None:
    from defectkit.pipeline.demo import target_misses

    _, models = default_demo
    assert target_misses(models) == []


@pytest.mark.slow
def test_default_demo_rerun_skips_everything(default_demo, run_cli) -> None:
    out, _ = default_demo
    code, text, _ = run_cli("demo", "-o", out)
    assert code == 0 and " ran" not in text.splitlines()[0] and "eval skipped" in text
