"""One spelling per concept across finetune / predict (docs/cli_flags.md): an old spelling, kept
as a hidden alias, gives the same config as the new one and is not shown in --help."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from defectkit.cli import build_parser
from defectkit.finetune.flags import ALIASES, SAM_FINETUNE_ALIASES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli_flags.md"


def _parse(*argv: object) -> argparse.Namespace:
    return build_parser().parse_args([str(a) for a in argv])


def test_yolo_world_aliases_give_the_same_configs(tmp_path: Path) -> None:
    from defectkit.finetune.yolo_world.cli import finetune_config, predict_config

    base = ("finetune", "yolo-world", "--data", tmp_path / "data.yaml", "--model", "yolov8n.yaml", "-o", tmp_path)
    new = finetune_config(_parse(*base, "--image-size", 320, "--batch-size", 4))
    old = finetune_config(_parse(*base, "--imgsz", 320, "--batch", 4))
    assert new == old and (new.imgsz, new.batch) == (320, 4)
    assert finetune_config(_parse(*base)).imgsz == 640  # the alias does not hide the default
    base = ("predict", "yolo-world", "--weights", "w.pt", "--split", "s.json", "--labels", "l", "-o", tmp_path)
    new = predict_config(_parse(*base, "--image-size", 256, "--batch-size", 2))
    assert new == predict_config(_parse(*base, "--imgsz", 256, "--batch", 2)) and (new.imgsz, new.batch) == (256, 2)


def test_sam_aliases_and_resume_run_dir(tmp_path: Path) -> None:
    from defectkit.finetune.sam.cli import finetune_config
    from defectkit.runtime import prepare_run_dir

    base = ("finetune", "sam", "--coco", "train.json", "-o", tmp_path / "run")
    new = finetune_config(_parse(*base, "--weights", "sam.pth", "--batch-size", 2))
    old = finetune_config(_parse(*base, "--checkpoint", "sam.pth", "--batch", 2))
    assert new == old and (new.checkpoint, new.batch_size, new.resume) == ("sam.pth", 2, False)
    assert finetune_config(_parse(*base, "--resume")).resume is True  # the old switch: -o with the flags
    prepare_run_dir(tmp_path / "run", new)  # config.json as train_sam writes it
    resumed = finetune_config(_parse("finetune", "sam", "--resume", tmp_path / "run", "--device", "cpu"))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert resumed.resume is True and resumed.device == "cpu" and resumed.output == str(tmp_path / "run")
    assert (resumed.checkpoint, resumed.batch_size, resumed.coco) == (saved["checkpoint"], 2, "train.json")


def test_image_model_aliases_give_the_same_config(tmp_path: Path) -> None:
    from defectkit.finetune.image.cli import build_train_config

    base = ("finetune", "classifier", "--split", tmp_path / "split.json", "-o", tmp_path / "run")
    new, _ = build_train_config(_parse(*base, "--image-size", 64, "--batch-size", 8))
    old, _ = build_train_config(_parse(*base, "--imgsz", 64, "--batch", 8))
    assert new == old and (new.image_size, new.batch_size) == (64, 8)


@pytest.mark.parametrize(
    "command", [("finetune", "yolo-world"), ("predict", "yolo-world"), ("finetune", "sam"),
                ("finetune", "classifier"), ("predict", "autoencoder")]
)
def test_old_spellings_are_hidden_from_help(command: tuple[str, str]) -> None:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command[0]]
    text = sub._subparsers._group_actions[0].choices[command[1]].format_help()
    for old in (*[o for olds in ALIASES.values() for o in olds], "--checkpoint"):
        assert not re.search(rf"{re.escape(old)}(?![\w-])", text), old


def test_the_docs_table_lists_every_alias() -> None:
    table = DOCS.read_text(encoding="utf-8")
    for new, olds in {**ALIASES, **SAM_FINETUNE_ALIASES}.items():
        row = next(line for line in table.splitlines() if line.startswith("|") and f"`{new}" in line
                   and any(f"`{o}`" in line for o in olds))
        assert all(f"`{o}`" in row for o in olds)


def test_finetune_sam_resume_run_dir_continues_a_killed_run(run_cli, tiny_dataset, tiny_split, tmp_path, monkeypatch):
    import csv

    from sam_helpers import convert_coco

    from defectkit.finetune.sam import engine as sam_engine

    coco = convert_coco(tiny_dataset, tiny_split, tmp_path / "labels")
    run = tmp_path / "run"
    real, calls = sam_engine.train_one_epoch, []

    def killed_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sam_engine, "train_one_epoch", killed_in_epoch_2)
    code, _, _ = run_cli("finetune", "sam", "--coco", coco["train"], "--epochs", "2", "--batch-size", "2", "-o", run)
    assert code == 130  # interrupted after epoch 1
    monkeypatch.setattr(sam_engine, "train_one_epoch", real)
    code, _, err = run_cli("finetune", "sam", "--resume", run, "--device", "cpu")
    assert code == 0, err
    with open(run / "metrics.csv", newline="") as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1", "2"]
