"""Classifier training on the tiny synthetic split: exact resume, torchrun world size 1, NaN stop,
frozen backbone, weights resolution, prediction CSV, bad-input messages."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import socket
from pathlib import Path

import pytest
import torch

from defectkit.errors import DefectkitError, InputError, MissingWeightsError
from defectkit.finetune.image.config import ClassifierConfig, ImagePredictConfig
from defectkit.runtime import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/finetune/conftest.py


def _config(split: Path, out: Path, **kw) -> ClassifierConfig:
    base = dict(
        split=str(split),
        output=str(out),
        image_size=32,
        epochs=2,
        batch_size=4,
        dropout=0.3,
        augment=True,
        rotate=15.0,
        sampler="balanced",
        device="cpu",
        seed=3,
    )
    return ClassifierConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def straight_run(tiny_split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from defectkit.finetune.image.train import train_classifier

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_classifier(_config(tiny_split, tmp_path_factory.mktemp("cls") / "straight"))
    finally:
        torch.set_num_threads(n)


def _same_weights(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_run_folder_contents(straight_run: Path) -> None:
    for name in ("config.json", "metrics.csv", "best.pt", "last.pt", "train.log"):
        assert (straight_run / name).is_file(), name
    ckpt = load_checkpoint(straight_run / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["kind"] == "classifier"
    assert {"model", "optimizer", "rng", "config", "versions", "model_spec"} <= ckpt.keys()
    assert ckpt["model_spec"]["classes"] == ["good", "defect"]
    assert json.loads((straight_run / "config.json").read_text())["config"]["dropout"] == 0.3
    rows = list(csv.DictReader((straight_run / "metrics.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2"]


def test_resume_after_kill_gives_the_same_weights(
    straight_run: Path, tiny_split: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from defectkit.finetune.image import engine as image_engine
    from defectkit.finetune.image.train import train_classifier

    real = image_engine.train_one_epoch
    calls = []

    def killed_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies during epoch 2
        return real(*args, **kwargs)

    monkeypatch.setattr(image_engine, "train_one_epoch", killed_in_epoch_2)
    cfg = _config(tiny_split, tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        train_classifier(cfg)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(image_engine, "train_one_epoch", real)
    torch.manual_seed(12345)  # a different global RNG state must not matter after resume
    train_classifier(cfg, resume=True)
    _same_weights(straight_run / "last.pt", tmp_path / "run" / "last.pt")
    assert (tmp_path / "run" / "metrics.csv").read_text() == (straight_run / "metrics.csv").read_text()
    with pytest.raises(InputError, match="already finished epoch 2 of 2"):
        train_classifier(cfg, resume=True)


def test_torchrun_world_size_1_matches_single_process(
    straight_run: Path, tiny_split: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    import torch.distributed as dist

    from defectkit.finetune.image.train import train_classifier

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }.items():
        monkeypatch.setenv(k, v)
    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda r: records.append(r.getMessage())
    logger = logging.getLogger("defectkit.finetune.image.dist")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "level", logging.INFO)
    try:
        run = train_classifier(_config(tiny_split, tmp_path / "ddp"))
    finally:
        logger.removeHandler(handler)
    assert "distributed: rank 0 of 1 on cpu" in records  # gloo process group + DDP wrapper
    assert not dist.is_initialized()  # the process group is torn down again
    _same_weights(straight_run / "last.pt", run / "last.pt")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    tiny_split: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from defectkit.finetune.image import losses as image_losses
    from defectkit.finetune.image.train import train_classifier

    real = image_losses.build_classification_loss

    def poisoned(*args, **kwargs):
        inner = real(*args, **kwargs)
        calls = []

        class Poisoned(torch.nn.Module):
            def forward(self, logits, target):
                calls.append(1)
                loss = inner(logits, target)
                return loss * float("nan") if len(calls) > 3 else loss  # 2 train + 1 val batches = epoch 1

        return Poisoned()

    monkeypatch.setattr(image_losses, "build_classification_loss", poisoned)
    run = tmp_path / "nan"
    with pytest.raises(
        DefectkitError, match=r"epoch 2, step 0: the training loss is nan.*last good checkpoint"
    ):
        train_classifier(_config(tiny_split, run, epochs=3, sampler="none"))
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_frozen_backbone_trains_only_the_head(tiny_split: Path, tmp_path: Path) -> None:
    from defectkit.finetune.image.model import build_classifier
    from defectkit.finetune.image.train import train_classifier

    torch.manual_seed(3)
    init = build_classifier("resnet18", 2, dropout=0.3).state_dict()
    run = train_classifier(_config(tiny_split, tmp_path / "frozen", epochs=1, freeze_epochs=-1))
    after = load_checkpoint(run / "last.pt")["model"]
    assert torch.equal(init["conv1.weight"], after["conv1.weight"])
    assert torch.equal(init["layer4.1.conv2.weight"], after["layer4.1.conv2.weight"])
    assert not torch.equal(init["fc.1.weight"], after["fc.1.weight"])


def test_imagenet_weights_come_only_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision

    from defectkit.finetune.image.model import build_classifier

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    folder = tmp_path / "th" / "hub" / "checkpoints"
    with pytest.raises(MissingWeightsError) as err:
        build_classifier("resnet18", 2, weights="imagenet")
    assert "resnet18-f37072fd.pth" in str(err.value) and str(folder) in str(err.value)
    assert not folder.exists()  # nothing was downloaded
    folder.mkdir(parents=True)
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), folder / "resnet18-f37072fd.pth")
    model = build_classifier("resnet18", 3, weights="imagenet", dropout=0.5)
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
    assert model.fc[1].out_features == 3 and model.fc[0].p == 0.5
    # PATH: a state dict file of the plain architecture loads the same way
    path = tmp_path / "mine.pth"
    torch.save(reference.state_dict(), path)
    assert torch.equal(
        build_classifier("resnet18", 2, weights=str(path)).layer1[0].conv1.weight,
        reference.layer1[0].conv1.weight,
    )
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(InputError, match="do not fit this architecture"):
        build_classifier("resnet18", 2, weights=str(path))
    with pytest.raises(InputError, match="not a torchvision classification model"):
        build_classifier("resnet_nope", 2)


def test_predictions_csv_matches_the_split(straight_run: Path, tiny_split: Path, tmp_path: Path) -> None:
    from defectkit.datasets.split import load_split
    from defectkit.finetune.image.predict import predict_classifier

    out = predict_classifier(
        ImagePredictConfig(weights=str(straight_run / "best.pt"), output=str(tmp_path / "p"))
    )
    text = (out / "image_scores.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert text.splitlines()[0] == "image,split,defect_type,label,score,pred"
    manifest = load_split(tiny_split)
    expected = [e for e in manifest.entries if e.split in ("val", "test")]
    assert [r["image"] for r in rows] == [e.name for e in expected]
    assert [(r["split"], r["defect_type"], int(r["label"])) for r in rows] == [
        (e.split, e.defect_type, e.label) for e in expected
    ]
    assert all((float(r["score"]) >= 0.5) == (r["pred"] == "1") for r in rows)
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)
    meta = json.loads((out / "prediction_meta.json").read_text())
    assert meta["kind"] == "classifier" and meta["splits"] == ["val", "test"]
    assert meta["model"].startswith("ResNet18") and meta["config"]["threshold"] == 0.5


def _edited_split(src: Path, dst: Path, edit) -> Path:
    data = json.loads(src.read_text())
    for e in data["images"]:
        edit(e)
    dst.write_text(json.dumps(data))
    return dst


def test_bad_splits_are_refused_with_clear_messages(
    tiny_split: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    from defectkit.datasets.mvtec import scan_mvtec
    from defectkit.datasets.split import SplitConfig, make_split
    from defectkit.finetune.image.train import train_classifier

    def moved_to_val(e):
        e["split"] = "val" if e["split"] == "train" else e["split"]

    empty = _edited_split(tiny_split, tmp_path / "empty.json", moved_to_val)
    with pytest.raises(InputError, match="the train split is empty"):
        train_classifier(_config(empty, tmp_path / "r1"))

    def drop_small(e):
        if e["split"] == "train" and e["defect_type"] == "broken_small":
            e["split"] = "test"

    no_small = _edited_split(tiny_split, tmp_path / "nosmall.json", drop_small)
    with pytest.raises(InputError, match="class 'broken_small' has 0 images in the train split"):
        train_classifier(_config(no_small, tmp_path / "r2", task="defect-type"))
    unsup = make_split(scan_mvtec(tiny_dataset), SplitConfig(defects_to_train=0)).save(
        tmp_path / "unsup.json"
    )
    with pytest.raises(InputError, match=r"class 'defect' has 0 images.*--defects-to-train"):
        train_classifier(_config(unsup, tmp_path / "r3"))

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    split = make_split(scan_mvtec(data), SplitConfig(defects_to_train=1)).save(tmp_path / "fp.json")
    first = sorted((data / "train" / "good").glob("*.png"))[0]
    first.write_bytes(first.read_bytes() + b"changed")
    with pytest.raises(InputError, match="fingerprint no longer matches"):
        train_classifier(_config(split, tmp_path / "r4"))


def test_config_validation_names_the_option(tiny_split: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loss weighted-ce needs class_weights"):
        _config(tiny_split, tmp_path, loss="weighted-ce", class_weights="none")
    with pytest.raises(ValueError, match="dropout must be in"):
        _config(tiny_split, tmp_path, dropout=1.0)
    assert (
        dataclasses.replace(_config(tiny_split, tmp_path), loss="weighted-ce").resolved_class_weights
        == "inverse"
    )
