"""``defectkit run PIPELINE.yaml``: config loading, up-front weights check, stage skipping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from defectkit.errors import InputError
from defectkit.pipeline.run import build_stages, load_pipeline_yaml

REPO = Path(__file__).resolve().parents[2]


def test_shipped_gpu_config_loads_and_names_every_missing_weights_file(run_cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    cfg = load_pipeline_yaml(REPO / "configs" / "bottle_gpu.yaml")
    names = [s.name for s in build_stages(cfg)]
    assert names[:4] == ["describe", "split", "paste", "convert"] and names[-1] == "eval"
    assert {"yolo_world_train", "sam_train", "classifier_train", "autoencoder_train"} <= set(names)
    code, out, err = run_cli("run", REPO / "configs" / "bottle_gpu.yaml")
    assert code == 2 and out == ""
    for name in ("ViT-B-32.pt", "yolov8s-worldv2.pt", "sam_vit_b_01ec64.pth", "resnet18-f37072fd.pth"):
        assert name in err
    assert "4 weights file(s) missing" in err and len(err.strip().splitlines()) == 1


def test_shipped_cpu_config_is_from_scratch_on_a_cpu_with_step_budgets() -> None:
    from defectkit.finetune.image.config import AutoencoderConfig, ClassifierConfig

    cfg = load_pipeline_yaml(REPO / "configs" / "mvtec_cpu.yaml")
    names = [s.name for s in build_stages(cfg)]
    assert {"yolo_world_train", "sam_train", "classifier_train", "autoencoder_train", "eval"} <= set(names)
    assert cfg.split["defects_to_train"] == 5  # the course-study protocol
    assert "random_seed" in cfg.text_embeddings and "clip_weights" not in cfg.text_embeddings
    assert cfg.yolo_world["model"].endswith(".yaml") and cfg.sam.get("checkpoint") is None  # from scratch
    assert cfg.classifier["weights"] == "none"
    for section in (cfg.yolo_world, cfg.sam, cfg.classifier, cfg.autoencoder):
        assert section["device"] == "cpu" and "epochs" not in section  # lengths in steps
    assert cfg.yolo_world["steps"] > 0 and cfg.sam["steps"] > 0
    assert cfg.paste["per_type"] > 0 and cfg.eval["threshold"] == "balanced" and cfg.yolo_world["imgsz"] == "auto"
    assert [s.name for s in build_stages(cfg)][1:4] == ["split", "paste", "convert"]
    # the image models run with the library defaults, which budget in steps
    assert ClassifierConfig(split="-", output="-").steps > 0 and AutoencoderConfig(split="-", output="-").steps > 0


def test_bad_yaml_keys_are_named(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({"output": "out", "dataset": "d", "classifier": {"arch": "resnet18", "epochz": 3}}))
    with pytest.raises(InputError, match=r"p\.yaml: classifier: unknown key\(s\) \['epochz'\]"):
        load_pipeline_yaml(p)
    p.write_text(yaml.safe_dump({"output": "out", "dataset": "d", "autoencoder": {"image_size": 50}}))
    with pytest.raises(InputError, match=r"p\.yaml: autoencoder: image_size must be a power of two >= 32"):
        load_pipeline_yaml(p)
    p.write_text(yaml.safe_dump({"output": "out", "dataset": "d", "colour": 1}))
    with pytest.raises(InputError, match=r"p\.yaml: unknown key\(s\) \['colour'\]"):
        load_pipeline_yaml(p)
    with pytest.raises(InputError, match="pipeline file not found"):
        load_pipeline_yaml(tmp_path / "nope.yaml")


def test_image_models_chain_runs_then_skips(run_cli, tiny_dataset: Path, tmp_path: Path) -> None:
    p = tmp_path / "pipe.yaml"
    small = {"epochs": 1, "image_size": 32, "batch_size": 8, "device": "cpu"}
    p.write_text(yaml.safe_dump({
        "output": "out", "dataset": str(tiny_dataset),
        "split": {"defects_to_train": 1, "val_fraction": 0.25},
        "convert": {"formats": ["coco"]},
        "classifier": {"arch": "resnet18", "weights": "none", **small},
        "autoencoder": {**small},
        "eval": {"bootstrap": 0, "threshold": "good-recall=0.9"},
    }))
    code, out, err = run_cli("run", p)
    assert code == 0, err
    assert "ResNet" in out and "AutoEncoder" in out and "report:" in out
    report = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    assert len(report["models"]) == 2
    for sub in ("split.json", "labels/coco/test.json", "runs/classifier/config.json", "runs/autoencoder/best.pt"):
        assert (tmp_path / "out" / sub).exists(), sub
    code, out, _ = run_cli("run", p)
    assert code == 0 and "describe skipped" in out and "classifier_train skipped" in out and " ran" not in out
    code, out, _ = run_cli("run", p, "--only", "autoencoder_predict")
    assert code == 0 and "autoencoder_predict ran" in out and "classifier" not in out.split("\n")[0]


def test_paste_section_feeds_every_later_stage(run_cli, tiny_dataset: Path, tmp_path: Path) -> None:
    from defectkit.datasets.split import load_split

    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump({
        "output": "out", "dataset": str(tiny_dataset),
        "split": {"defects_to_train": 2, "val_fraction": 0.25},
        "paste": {"per_type": 2, "placement": "dihedral"},
        "convert": {"formats": ["coco"]},
        "classifier": {"arch": "resnet18", "weights": "none", "epochs": 1, "image_size": 32, "batch_size": 8,
                       "device": "cpu"},
        "eval": {"bootstrap": 0},
    }))
    cfg = load_pipeline_yaml(p)
    names = [s.name for s in build_stages(cfg)]
    assert names[:4] == ["describe", "split", "paste", "convert"]
    code, out, err = run_cli("run", p)
    assert code == 0, err
    made, pasted = load_split(tmp_path / "out" / "split.json"), load_split(tmp_path / "out" / "paste" / "split.json")
    assert made.subset("test") == pasted.subset("test") and made.subset("val") == pasted.subset("val")
    train = json.loads((tmp_path / "out" / "labels" / "coco" / "train.json").read_text())
    assert sum(Path(im["file_name"]).name.startswith("paste_") for im in train["images"]) == 6
    config = json.loads((tmp_path / "out" / "runs" / "classifier" / "config.json").read_text())
    assert config["config"]["split"].endswith("paste/split.json")  # the classifier trained on it too
    report = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    per_type = report["models"][0]["per_type"]  # test is the original one
    assert sum(row["n"] for row in per_type.values()) == len(made.subset("test"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"output": "o", "dataset": "d", "paste": {"placement": "sideways"}}))
    with pytest.raises(InputError, match=r"bad\.yaml: paste: placement must be one of"):
        load_pipeline_yaml(bad)


def test_yolo_imgsz_auto_follows_the_smallest_defect(tiny_split: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    import shutil

    from defectkit.datasets.sizing import image_size_for
    from defectkit.datasets.split import load_split
    from defectkit.pipeline import steps

    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump({"output": "out", "dataset": str(tiny_dataset),
                                 "yolo_world": {"model": "yolov8n-worldv2.yaml", "imgsz": "auto", "device": "cpu"}}))
    cfg = load_pipeline_yaml(p)  # "auto" passes the up-front checks
    cfg.out.mkdir(parents=True)
    shutil.copy(tiny_split, cfg.split_path)
    section = steps.auto_image_size(cfg, dict(cfg.yolo_world))
    assert section["imgsz"] == image_size_for(load_split(tiny_split)) and section["model"] == cfg.yolo_world["model"]
    assert steps.auto_image_size(cfg, {"imgsz": 320}) == {"imgsz": 320}
