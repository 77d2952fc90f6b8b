"""``SamTrainConfig.cpu_fast_path``: the speed tricks change no result beyond float rounding."""

from __future__ import annotations

import csv

import pytest
from sam_helpers import convert_coco

from defectkit.finetune.sam.config import SamTrainConfig
from defectkit.finetune.sam.train import train_sam

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/finetune/conftest.py


def test_fast_path_off_trains_to_the_same_numbers(tiny_dataset, tiny_split, tmp_path):
    coco = convert_coco(tiny_dataset, tiny_split, tmp_path / "labels")
    rows = {}
    for fast in (True, False):
        cfg = SamTrainConfig(coco=str(coco["train"]), val_coco=str(coco["test"]), output=str(tmp_path / f"run{fast}"),
                             cache_dir=str(tmp_path / "cache"), epochs=2, lr=1e-3, batch_size=1, warmup_steps=5,
                             cpu_fast_path=fast)
        train_sam(cfg)
        with open(tmp_path / f"run{fast}" / "metrics.csv", newline="") as fh:
            rows[fast] = list(csv.DictReader(fh))
    for a, b in zip(rows[True], rows[False], strict=True):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-3)
        assert float(a["val_iou"]) == pytest.approx(float(b["val_iou"]), abs=1e-3)
