"""``defectkit run --set``, the top-level ``device:`` and the device check before the first stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from defectkit.devices import check_device, for_torch, for_ultralytics, gpu_indices
from defectkit.errors import InputError
from defectkit.pipeline.overrides import apply_overrides, parse_override
from defectkit.pipeline.run import load_pipeline_yaml

REPO = Path(__file__).resolve().parents[2]
GPU_YAML = REPO / "configs" / "bottle_gpu.yaml"
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")


@pytest.mark.parametrize(
    ("item", "path", "value"),
    [
        ("sam.epochs=1", ("sam", "epochs"), 1),
        ("sam.lr=1.0e-5", ("sam", "lr"), 1.0e-5),
        ("classifier.device=cpu", ("classifier", "device"), "cpu"),
        ("device=0", ("device",), 0),
        ("yolo_world.overrides.mosaic=0.5", ("yolo_world", "overrides", "mosaic"), 0.5),
        ("convert.formats=[coco, yolo]", ("convert", "formats"), ["coco", "yolo"]),
        ("autoencoder=null", ("autoencoder",), None),
    ],
)
def test_values_are_typed_like_yaml(item, path, value) -> None:
    assert parse_override(item) == (path, value)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("sam.epochs", "expected KEY=VALUE"),
        ("sam..epochs=1", "expected KEY=VALUE"),
        ("sam.epochs=[1", "not valid YAML"),
        ("nosuch.key=1", "the pipeline has no nosuch section"),
        ("eval.threshold.x=1", "eval.threshold is not a section"),
    ],
)
def test_malformed_items_name_the_flag(item, message) -> None:
    with pytest.raises(InputError, match=f"--set {item}.*{message}".replace("[", r"\[")):
        apply_overrides({"eval": {"threshold": "max-f1"}}, [item])


def test_overrides_merge_without_touching_the_original() -> None:
    raw = {"sam": {"epochs": 30, "lr": 1e-4}, "yolo_world": {"overrides": {"nbs": 16}}}
    out = apply_overrides(raw, ["sam.epochs=1", "yolo_world.overrides.lr0=0.01", "device=cpu"])
    assert out == {"sam": {"epochs": 1, "lr": 1e-4}, "yolo_world": {"overrides": {"nbs": 16, "lr0": 0.01}},
                   "device": "cpu"}
    assert raw["sam"]["epochs"] == 30 and raw["yolo_world"]["overrides"] == {"nbs": 16}


def test_top_level_device_is_inherited_in_each_librarys_form(tmp_path, monkeypatch) -> None:
    cfg = load_pipeline_yaml(GPU_YAML)
    assert cfg.device == "cuda" and cfg.yolo_world["device"] == "0"
    assert cfg.sam["device"] == cfg.classifier["device"] == cfg.autoencoder["device"] == "cuda"
    assert cfg.text_embeddings["device"] == "cuda"
    cfg = load_pipeline_yaml(GPU_YAML, ["device=cpu", "classifier.device=cuda:1", "sam.epochs=1"])
    assert cfg.yolo_world["device"] == cfg.sam["device"] == cfg.autoencoder["device"] == "cpu"
    assert cfg.classifier["device"] == "cuda:1" and cfg.sam["epochs"] == 1
    monkeypatch.chdir(tmp_path)
    cfg = load_pipeline_yaml(GPU_YAML, ["output=runs/try", "device=1"])
    assert cfg.out == tmp_path / "runs" / "try"  # a --set path is relative to the current folder
    assert cfg.yolo_world["device"] == "1" and cfg.sam["device"] == "cuda:1"


def test_set_values_are_validated_like_the_file() -> None:
    with pytest.raises(InputError, match=r"bottle_gpu\.yaml with --set: classifier: unknown key\(s\) \['epochz'\]"):
        load_pipeline_yaml(GPU_YAML, ["classifier.epochz=1"])
    with pytest.raises(InputError, match="with --set: autoencoder: image_size must be a power of two >= 32"):
        load_pipeline_yaml(GPU_YAML, ["autoencoder.image_size=50"])
    with pytest.raises(InputError, match="device 'gpu please'"):
        load_pipeline_yaml(GPU_YAML, ["device=gpu please"])


def test_devices_translate_between_torch_and_ultralytics() -> None:
    assert [gpu_indices(d) for d in (None, "cpu", "cuda", "cuda:2", "0", "0,1", "-1")] == [
        None, None, [], [2], [0], [0, 1], []]
    assert [for_ultralytics(d) for d in ("cpu", "cuda", "cuda:1", "0,1", "-1")] == ["cpu", "0", "1", "0,1", "-1"]
    assert [for_torch(d) for d in ("cpu", "cuda", "cuda:1", "0,1", "2", "-1")] == [
        "cpu", "cuda", "cuda:1", "cuda:0", "cuda:2", "cuda"]


def test_check_device_counts_gpus(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device("0,1")
    check_device("cuda:1")
    with pytest.raises(InputError, match=r"sam\.device cuda:2: no GPU 2 on this machine \(2 GPU\(s\): 0\.\.1\)"):
        check_device("cuda:2", "sam.device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="--device 0: CUDA is not available on this machine"):
        check_device("0")


@no_cuda
def test_gpu_pipeline_on_a_cpu_box_stops_before_the_first_stage(run_cli, tmp_path) -> None:
    out = tmp_path / "out"
    code, stdout, err = run_cli("run", GPU_YAML, "--set", f"output={out}")
    assert code == 2 and stdout == "" and err.count("\n") == 1
    assert "yolo_world.device 0: CUDA is not available" in err and "sam.device cuda: CUDA is not available" in err
    assert "classifier.device cuda" in err and "4 weights file(s) missing" in err
    assert not (out / "describe.json").exists() and not (out / "split.json").exists()
    code, _, err = run_cli("run", GPU_YAML, "--set", f"output={out}", "--set", "device=cpu")
    assert code == 2 and "CUDA" not in err and "4 weights file(s) missing" in err


@no_cuda
def test_device_of_an_unselected_stage_is_not_checked(run_cli, tiny_dataset, tmp_path) -> None:
    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump({"output": "out", "dataset": str(tiny_dataset), "device": "cuda",
                                 "classifier": {"weights": "none"}}))
    code, _, err = run_cli("run", p)
    assert code == 2 and "classifier.device cuda: CUDA is not available" in err
    assert not (tmp_path / "out" / "describe.json").exists()
    code, _, err = run_cli("run", p, "--only", "describe")
    assert code == 0, err
    assert (tmp_path / "out" / "describe.json").is_file()


@no_cuda
@pytest.mark.parametrize("device", ["0", "0,1", "cuda:0"])
def test_finetune_yolo_world_on_a_missing_gpu_is_one_line(run_cli, tmp_path, device) -> None:
    code, out, err = run_cli("finetune", "yolo-world", "--data", tmp_path / "d.yaml", "--model", "yolov8n.yaml",
                             "--device", device, "-o", tmp_path / "r")
    assert code == 2 and out == ""
    assert err == f"defectkit: error: --device {device}: CUDA is not available on this machine (use --device cpu)\n"
    assert not (tmp_path / "r").exists()
