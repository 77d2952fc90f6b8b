"""Training length in optimiser steps: the same budget on any dataset size, epochs derived from it,
``epochs`` > 0 winning, and every trainer logging the steps it ran."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from defectkit.errors import InputError
from defectkit.finetune.image.config import AutoencoderConfig, ClassifierConfig
from defectkit.runtime import epochs_for_budget

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/finetune/conftest.py


@pytest.mark.parametrize(
    ("steps", "epochs", "per_epoch", "expected"),
    [
        (100, 0, 10, 10),  # exactly 10 epochs
        (101, 0, 10, 11),  # rounded up: at least the budget
        (2000, 0, 2, 1000),  # a 19-image sample at batch 16 ...
        (2000, 0, 11, 182),  # ... and the 167-image bottle train split get the same 2000 steps
        (5, 0, 100, 1),  # at least one epoch
        (2000, 7, 11, 7),  # epochs > 0 wins
        (10, 0, 0, 10),  # no batch at all: one step per epoch, never a division by zero
    ],
)
def test_epochs_for_budget(steps: int, epochs: int, per_epoch: int, expected: int) -> None:
    assert epochs_for_budget(steps, epochs, per_epoch) == expected


def test_image_configs_default_to_a_step_budget() -> None:
    for cls in (ClassifierConfig, AutoencoderConfig):
        cfg = cls(split="s.json", output="r")
        assert cfg.epochs == 0 and cfg.steps > 0
        assert cfg.epochs_for(4) == math.ceil(cfg.steps / 4)
    with pytest.raises(ValueError, match="steps: give a training length"):
        ClassifierConfig(split="s.json", output="r", steps=0, epochs=0)
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        AutoencoderConfig(split="s.json", output="r", epochs=-2)


def _metric_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_classifier_trains_its_step_budget_and_logs_it(tiny_split: Path, tmp_path: Path) -> None:
    from defectkit.finetune.image.train import train_classifier

    cfg = ClassifierConfig(
        split=str(tiny_split), output=str(tmp_path / "c"), image_size=32, batch_size=4, steps=7,
        device="cpu", precise_bn=False,
    )
    run = train_classifier(cfg)
    rows = _metric_rows(run)
    per_epoch = int(rows[0]["step"])
    assert per_epoch >= 1
    assert len(rows) == math.ceil(7 / per_epoch)  # whole epochs covering the budget
    assert [int(r["step"]) for r in rows] == [per_epoch * (i + 1) for i in range(len(rows))]
    log = (run / "train.log").read_text(encoding="utf-8")
    assert f"= {len(rows) * per_epoch} optimiser steps" in log
    assert f"trained {len(rows) * per_epoch} optimiser steps ({len(rows)} epochs)" in log


def test_explicit_epochs_win_over_steps(tiny_split: Path, tmp_path: Path) -> None:
    from defectkit.finetune.image.train import train_autoencoder

    cfg = AutoencoderConfig(
        split=str(tiny_split), output=str(tmp_path / "ae"), image_size=32, batch_size=4, epochs=2,
        steps=5000, latent=8, device="cpu",
    )
    rows = _metric_rows(train_autoencoder(cfg))
    assert [int(r["epoch"]) for r in rows] == [1, 2]


def test_sam_step_budget_in_epochs() -> None:
    from defectkit.finetune.sam.config import SamTrainConfig

    cfg = SamTrainConfig(coco="c.json", output="o", steps=30, batch_size=4)
    assert cfg.epochs_for(10) == 10  # 3 steps per epoch over 10 images
    assert cfg.epochs_for(40) == 3
    assert SamTrainConfig(coco="c.json", output="o", steps=30, epochs=2).epochs_for(10) == 2
    with pytest.raises(ValueError, match="steps"):
        SamTrainConfig(coco="c.json", output="o", steps=0, epochs=0)


def _yolo_data(tmp_path: Path, n_images: int) -> Path:
    images = tmp_path / "yolo" / "images" / "train"
    images.mkdir(parents=True)
    for i in range(n_images):
        (images / f"{i:03d}.png").write_bytes(b"")
    (images / "notes.txt").write_text("not an image")
    data = tmp_path / "yolo" / "data.yaml"
    data.write_text(f"path: {tmp_path / 'yolo'}\ntrain: images/train\nval: images/train\nnames: {{0: chip}}\n")
    return data


def test_yolo_steps_become_epochs_over_the_train_images(tmp_path: Path) -> None:
    from defectkit.finetune.yolo_world.train import YoloFinetuneConfig, resolve_epochs

    data = _yolo_data(tmp_path, 20)  # batch 8: 3 steps per epoch
    cfg = YoloFinetuneConfig(data=data, model="yolov8n.yaml", output=tmp_path / "run", steps=30, batch=8)
    assert resolve_epochs(cfg) == 10
    cfg = YoloFinetuneConfig(data=data, model="yolov8n.yaml", output=tmp_path / "run", steps=30, epochs=4)
    assert resolve_epochs(cfg) == 4
    auto = YoloFinetuneConfig(data=data, model="yolov8n.yaml", output=tmp_path / "run", steps=30, batch=-1)
    with pytest.raises(InputError, match="cannot count the training images.*give --epochs N"):
        resolve_epochs(auto)
    with pytest.raises(ValueError, match="give a training length"):
        YoloFinetuneConfig(data=data, model="yolov8n.yaml", output=tmp_path / "run", steps=0, epochs=0)
