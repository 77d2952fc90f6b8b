"""Every weights flag and PIPELINE key takes a name from `defectkit weights list`, read from
$DEFECTKIT_HOME/weights; a missing one names the `defectkit weights fetch` command."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from defectkit.weights.registry import weights_dir


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (
            [
                "predict",
                "sam",
                "--weights",
                "sam_vit_b",
                "--split",
                "LABELS/split.json",
                "--labels",
                "LABELS",
                "-o",
                "p",
            ],
            "sam_vit_b",
        ),
        (
            [
                "finetune",
                "yolo-world",
                "--data",
                "d.yaml",
                "--model",
                "yolov8s-worldv2",
                "--text-embeddings",
                "e.pt",
                "-o",
                "r",
            ],
            "yolov8s-worldv2",
        ),
        (["finetune", "yolo-world", "--data", "d.yaml", "--model", "yolov8s.pt", "-o", "r"], "yolov8s"),
        (["embed-text", "--names", "chip", "--clip-weights", "clip_vit_b_32", "-o", "e.pt"], "clip_vit_b_32"),
        (["embed-text", "--names", "chip", "--clip-weights", "ViT-B-32.pt", "-o", "e.pt"], "clip_vit_b_32"),
        (
            [
                "finetune",
                "classifier",
                "--split",
                "SPLIT",
                "--weights",
                "resnet34",
                "--arch",
                "resnet34",
                "-o",
                "r",
            ],
            "resnet34",
        ),
        (
            [
                "predict",
                "yolo-world",
                "--weights",
                "yolov8m",
                "--split",
                "LABELS/split.json",
                "--labels",
                "LABELS",
                "-o",
                "p",
            ],
            "yolov8m",
        ),
    ],
)
def test_a_missing_name_says_which_fetch_brings_it(
    run_cli, good_only_labels, tiny_split, tmp_path, monkeypatch, argv, name
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(
        *(a.replace("LABELS", str(good_only_labels)).replace("SPLIT", str(tiny_split)) for a in argv)
    )
    assert code == 2, err
    assert f"defectkit weights fetch {name}" in err and str(weights_dir()) in err
    assert "Traceback" not in err


def test_a_fetched_resnet_loads_by_name_and_as_imagenet(monkeypatch, tmp_path) -> None:
    from torchvision import models

    from defectkit.finetune.image.model import build_classifier

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty hub cache
    official = models.resnet18(weights=None)
    weights_dir().mkdir(parents=True)
    torch.save(official.state_dict(), weights_dir() / "resnet18-f37072fd.pth")
    for weights in ("resnet18", "resnet18-f37072fd.pth", "imagenet"):
        model = build_classifier("resnet18", 2, weights=weights)
        assert torch.equal(model.conv1.weight, official.conv1.weight)


def test_sam_checkpoint_by_name(tmp_path) -> None:
    from defectkit.finetune.sam.model import build_sam_model

    tiny = build_sam_model("tiny", None)
    weights_dir().mkdir(parents=True)
    torch.save(tiny.state_dict(), weights_dir() / "sam_vit_b_01ec64.pth")  # any state dict: read by name
    from defectkit.finetune.sam.model import read_state_dict

    state = read_state_dict("sam_vit_b")
    assert torch.equal(
        state["mask_decoder.iou_token.weight"], tiny.state_dict()["mask_decoder.iou_token.weight"]
    )


def test_pipeline_keys_take_names(run_cli, tmp_path: Path, monkeypatch) -> None:
    from defectkit.pipeline.run import build_stages, load_pipeline_yaml

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    p = tmp_path / "pipe.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "output": "out",
                "dataset": "d",
                "text_embeddings": {"clip_weights": "ViT-B-32.pt"},
                "yolo_world": {"model": "yolov8s-worldv2.pt", "epochs": 1},
                "sam": {"model_type": "vit_b", "checkpoint": "sam_vit_b"},
                "classifier": {"weights": "resnet18"},
            }
        )
    )
    cfg = load_pipeline_yaml(p)
    assert cfg.yolo_world["model"] == "yolov8s-worldv2.pt" and cfg.sam["checkpoint"] == "sam_vit_b"
    weights = {s.name: s.weights for s in build_stages(cfg)}
    assert weights["sam_train"] == (weights_dir() / "sam_vit_b_01ec64.pth",)
    assert weights["yolo_world_train"] == (weights_dir() / "yolov8s-worldv2.pt",)
    code, out, err = run_cli("run", p)
    assert code == 2 and "4 weights file(s) missing" in err
    assert "`defectkit weights fetch clip_vit_b_32 yolov8s-worldv2 sam_vit_b resnet18`" in err
