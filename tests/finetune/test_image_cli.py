"""The image-level commands as a user types them (every command of docs/guide/image_models.md):
config file + flag precedence, the homework configs, predict, resume, error exits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from defectkit.errors import InputError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
HOMEWORK = sorted(CONFIGS.glob("homework_*.yaml"))
TINY = ("--image-size", "32", "--batch-size", "4", "--device", "cpu")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/finetune/conftest.py


def _resolve(*argv: str):
    from defectkit.cli import build_parser
    from defectkit.finetune.image.cli import build_train_config

    return build_train_config(build_parser().parse_args(["finetune", *argv]))


def test_four_homework_configs_resolve() -> None:
    assert len(HOMEWORK) == 4
    seen = {}
    for path in HOMEWORK:
        model = "autoencoder" if "autoencoder" in path.name else "classifier"
        config, resume = _resolve(model, "--config", str(path), "--split", "s.json", "-o", "run")
        assert not resume and config.lr == 1e-3 and config.optimizer == "adam"  # YAML's "1e-3" is a str
        seen[path.stem] = config
    assert seen["homework_autoencoder"].epochs == 20
    assert [
        seen[k].loss
        for k in ("homework_resnet_ce", "homework_resnet_weighted_ce", "homework_resnet_wce_dropout_wd")
    ] == ["ce", "weighted-ce", "weighted-ce"]
    best = seen["homework_resnet_wce_dropout_wd"]
    assert (best.epochs, best.dropout, best.weight_decay, best.weights) == (10, 0.5, 1e-4, "imagenet")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ((), {"epochs": 10, "dropout": 0.5, "lr": 1e-3, "seed": 0}),  # file over defaults
        (("--epochs", "3", "--lr", "0.01"), {"epochs": 3, "dropout": 0.5, "lr": 0.01}),  # flags over file
        (("--dropout", "0", "--no-augment"), {"dropout": 0.0, "augment": False, "epochs": 10}),
        (("--freeze-epochs", "all"), {"freeze_epochs": -1}),
    ],
)
def test_flags_override_the_config_file(argv: tuple[str, ...], expected: dict) -> None:
    path = CONFIGS / "homework_resnet_wce_dropout_wd.yaml"
    config, _ = _resolve("classifier", "--config", str(path), "--split", "s.json", "-o", "r", *argv)
    assert {k: getattr(config, k) for k in expected} == expected


def test_bad_config_files_name_file_and_option(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: classifier\nlerning_rate: 0.1\n")
    with pytest.raises(InputError, match=r"bad.yaml: unknown option\(s\) lerning_rate for classifier"):
        _resolve("classifier", "--config", str(bad), "--split", "s", "-o", "r")
    with pytest.raises(InputError, match="is for model 'autoencoder', not 'classifier'"):
        _resolve("classifier", "--config", str(CONFIGS / "homework_autoencoder.yaml"))
    bad.write_text("dropout: 2.0\n")
    with pytest.raises(InputError, match=r"bad.yaml: --dropout: dropout must be in \[0, 1\)"):
        _resolve("classifier", "--config", str(bad), "--split", "s", "-o", "r")
    with pytest.raises(InputError, match="command line: --epochs: epochs must be >= 0"):
        _resolve("classifier", "--split", "s", "-o", "r", "--epochs", "-1")
    with pytest.raises(InputError, match="command line: --steps: steps: give a training length"):
        _resolve("classifier", "--split", "s", "-o", "r", "--epochs", "0", "--steps", "0")
    with pytest.raises(InputError, match="--split: split: a split manifest is required"):
        _resolve("classifier", "-o", "r")


def _other_split(tmp_path: Path) -> Path:
    """A split manifest over other data (the tiny dataset's settings, another seed)."""
    from defectkit.datasets.mvtec import scan_mvtec
    from defectkit.datasets.split import SplitConfig, make_split
    from defectkit.datasets.synth import SynthConfig, generate_synthetic

    config = SynthConfig(category="bottle", n_train=8, n_test_good=4, n_test_per_defect=4, size=64, seed=1)
    root = generate_synthetic(tmp_path / "other_data", config)
    return make_split(scan_mvtec(root), SplitConfig(defects_to_train=1, seed=0)).save(tmp_path / "other.json")


def test_classifier_commands_end_to_end(run_cli, tiny_split: Path, tmp_path: Path) -> None:
    run = tmp_path / "resnet"
    code, out, err = run_cli(
        "finetune",
        "classifier",
        "--config",
        CONFIGS / "homework_resnet_wce_dropout_wd.yaml",
        "--split",
        tiny_split,
        "-o",
        run,
        "--weights",
        "none",
        "--epochs",
        "1",
        *TINY,
    )
    assert code == 0, err
    assert "best.pt" in out
    saved = json.loads((run / "config.json").read_text())["config"]
    assert (saved["epochs"], saved["dropout"], saved["loss"], saved["weights"]) == (
        1,
        0.5,
        "weighted-ce",
        "none",
    )
    # resume with more epochs: split, output and the rest come from RUN/config.json
    code, _, err = run_cli("finetune", "classifier", "--resume", run, "--epochs", "2")
    assert code == 0, err
    assert [r["epoch"] for r in csv.DictReader((run / "metrics.csv").read_text().splitlines())] == ["1", "2"]
    code, out, err = run_cli(
        "predict",
        "classifier",
        "--weights",
        run / "best.pt",
        "--split",
        tiny_split,
        "-o",
        run / "predictions",
        "--splits",
        "test",
    )
    assert code == 0, err
    assert "fingerprint differs" not in err
    rows = list(csv.DictReader((run / "predictions" / "image_scores.csv").read_text().splitlines()))
    assert rows and {r["split"] for r in rows} == {"test"}
    assert json.loads((run / "predictions" / "prediction_meta.json").read_text())["splits"] == ["test"]
    other = _other_split(tmp_path)
    code, _, err = run_cli(
        "predict", "classifier", "--weights", run / "best.pt", "--split", other, "-o", run / "other"
    )
    assert code == 0, err
    assert f"{other}: not the manifest the model was trained with (fingerprint differs)" in err


def test_autoencoder_commands_end_to_end(run_cli, tiny_split: Path, tmp_path: Path) -> None:
    run = tmp_path / "ae"
    code, _, err = run_cli(
        "finetune",
        "autoencoder",
        "--config",
        CONFIGS / "homework_autoencoder.yaml",
        "--split",
        tiny_split,
        "-o",
        run,
        "--epochs",
        "2",
        "--width",
        "8",
        "--latent",
        "8",
        "--loss",
        "l2+ssim",
        *TINY,
    )
    assert code == 0, err
    saved = json.loads((run / "config.json").read_text())["config"]
    assert (saved["epochs"], saved["loss"], saved["lr"]) == (2, "l2+ssim", 1e-3)
    code, _, err = run_cli("predict", "autoencoder", "--weights", run / "best.pt", "-o", run / "pred")
    assert code == 0, err
    assert "fingerprint differs" not in err  # the split recorded in the checkpoint
    other = _other_split(tmp_path)
    code, _, err = run_cli(
        "predict",
        "autoencoder",
        "--weights",
        run / "best.pt",
        "--split",
        other,
        "-o",
        run / "other",
        "--no-maps",
    )
    assert code == 0, err
    assert f"{other}: not the manifest the model was trained with (fingerprint differs)" in err
    meta = json.loads((run / "pred" / "prediction_meta.json").read_text())
    assert meta["kind"] == "anomaly" and np.isfinite(meta["config"]["threshold"])
    amap = np.load(next((run / "pred" / "anomaly_maps").glob("test_*.npy")))
    assert amap.shape == (64, 64) and amap.dtype == np.float32  # the tiny images' own size, not 32
    code, _, err = run_cli(
        "predict", "autoencoder", "--weights", run / "best.pt", "-o", run / "nomaps", "--no-maps"
    )
    assert code == 0 and not (run / "nomaps" / "anomaly_maps").exists()


def test_error_exits(run_cli, tiny_split: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    code, _, err = run_cli(
        "finetune", "classifier", "--split", tiny_split, "-o", tmp_path / "r", "--weights", "imagenet", *TINY
    )
    assert code == 2
    assert "resnet18-f37072fd.pth not found in " + str(tmp_path / "th" / "hub" / "checkpoints") in err
    code, _, err = run_cli(
        "predict", "classifier", "--weights", tmp_path / "missing.pt", "-o", tmp_path / "p"
    )
    assert code == 2 and "missing.pt: checkpoint not found" in err
    code, _, err = run_cli("finetune", "classifier", "--resume", tmp_path / "nothing")
    assert code == 2 and "no such run folder" in err


def test_autoencoder_threshold_flag_reaches_the_config() -> None:
    config, _ = _resolve("autoencoder", "--split", "s.json", "-o", "r")
    assert config.threshold == "balanced"
    config, _ = _resolve("autoencoder", "--split", "s.json", "-o", "r", "--threshold", "good-recall=0.9")
    assert config.threshold == "good-recall=0.9"
