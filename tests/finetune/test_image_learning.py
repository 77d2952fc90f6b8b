"""Both image-level models learn on an easy synthetic set (bright spots on noise), end to end:
train -> best.pt -> predict -> image_scores.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from defectkit.datasets.mvtec import scan_mvtec
from defectkit.datasets.split import SplitConfig, load_split, make_split
from defectkit.finetune.image.config import AutoencoderConfig, ClassifierConfig, ImagePredictConfig
from defectkit.finetune.image.metrics import val_metrics

SIZE = 32


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/finetune/conftest.py


def _write_easy(root: Path, n_good: int = 24, n_spot: int = 16, seed: int = 0) -> Path:
    """MVTec layout: grey-noise images; ``spot`` images carry a bright 8x8 square (and its mask)."""
    import cv2

    rng = np.random.default_rng(seed)
    cat = root / "easy"
    for folder in ("train/good", "test/good", "test/spot", "ground_truth/spot"):
        (cat / folder).mkdir(parents=True, exist_ok=True)

    def noise() -> np.ndarray:
        return rng.integers(60, 110, (SIZE, SIZE, 3), dtype=np.uint8)

    for i in range(n_good):
        cv2.imwrite(str(cat / "train/good" / f"{i:03d}.png"), noise())
    for i in range(8):
        cv2.imwrite(str(cat / "test/good" / f"{i:03d}.png"), noise())
    for i in range(n_spot):
        img, mask = noise(), np.zeros((SIZE, SIZE), np.uint8)
        y, x = rng.integers(2, SIZE - 10, 2)
        img[y : y + 8, x : x + 8] = 250
        mask[y : y + 8, x : x + 8] = 255
        cv2.imwrite(str(cat / "test/spot" / f"{i:03d}.png"), img)
        cv2.imwrite(str(cat / "ground_truth/spot" / f"{i:03d}_mask.png"), mask)
    return cat


@pytest.fixture(scope="module")
def easy_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train 15 good + 6 spot, val 5 good + 2 spot, test 8 good + 8 spot."""
    root = _write_easy(tmp_path_factory.mktemp("easy"))
    manifest = make_split(scan_mvtec(root), SplitConfig(defects_to_train=8, val_fraction=0.25, seed=0))
    return manifest.save(root.parent / "split.json")


def _rows(pred_dir: Path) -> list[dict[str, str]]:
    with open(pred_dir / "image_scores.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _test_metrics(pred_dir: Path) -> dict[str, float]:
    rows = [r for r in _rows(pred_dir) if r["split"] == "test"]
    labels = np.array([int(r["label"]) for r in rows])
    scores = np.array([float(r["score"]) for r in rows])
    pred = np.array([float(r["pred"]) for r in rows])
    return {**val_metrics(labels, pred, 0.5), "auroc": val_metrics(labels, scores, 0.5)["auroc"]}


def _losses(run: Path, column: str = "train_loss") -> list[float]:
    with open(run / "metrics.csv", newline="") as fh:
        return [float(r[column]) for r in csv.DictReader(fh)]


def test_classifier_loss_falls_and_beats_chance(easy_split: Path, tmp_path: Path) -> None:
    from defectkit.finetune.image.predict import predict_classifier
    from defectkit.finetune.image.train import train_classifier

    cfg = ClassifierConfig(
        split=str(easy_split),
        output=str(tmp_path / "cls"),
        image_size=SIZE,
        epochs=3,
        batch_size=8,
        lr=1e-3,
        augment=False,
        loss="weighted-ce",
        device="cpu",
    )
    run = train_classifier(cfg)
    losses = _losses(run)
    assert len(losses) == 3 and losses[-1] < losses[0]
    pred = predict_classifier(ImagePredictConfig(weights=str(run / "best.pt"), output=str(tmp_path / "p")))
    m = _test_metrics(pred)
    assert m["accuracy"] >= 0.75, m  # chance is 0.5 on the balanced test split
    assert m["auroc"] >= 0.85, m


#: the earlier fully convolutional AutoEncoder with its former defaults, and the SSIM AutoEncoder
AE_SETTINGS = {
    "conv": {"arch": "conv", "epochs": 3, "width": 8, "latent": 8, "loss": "l2", "reduction": "max",
             "augment": False, "lr": 5e-3, "normalize_map": False},
    "ssim-ae": {"arch": "ssim-ae", "steps": 40, "latent": 16, "loss": "ssim", "lr": 2e-3},
}


@pytest.mark.parametrize("arch", sorted(AE_SETTINGS))
def test_autoencoder_learns_and_writes_maps(easy_split: Path, tmp_path: Path, arch: str) -> None:
    from defectkit.finetune.image.predict import predict_autoencoder
    from defectkit.finetune.image.train import train_autoencoder
    from defectkit.runtime import load_checkpoint

    cfg = AutoencoderConfig(
        split=str(easy_split),
        output=str(tmp_path / "ae"),
        image_size=SIZE,
        batch_size=8,
        smooth_sigma=1.0,
        device="cpu",
        **AE_SETTINGS[arch],
    )
    run = train_autoencoder(cfg)
    losses = _losses(run)
    assert losses[-1] < losses[0]
    ckpt = load_checkpoint(run / "best.pt")
    assert np.isfinite(ckpt["threshold"]) and ckpt["kind"] == "anomaly"
    if cfg.normalize_map:  # per-pixel statistics of the good images' errors, at the model's size
        assert ckpt["map_stats"]["mean"].shape == ckpt["map_stats"]["std"].shape == (SIZE, SIZE)
        assert float(ckpt["map_stats"]["std"].min()) >= 0
    pred = predict_autoencoder(ImagePredictConfig(weights=str(run / "best.pt"), output=str(tmp_path / "p")))
    assert _test_metrics(pred)["auroc"] >= 0.9
    manifest = load_split(easy_split)
    names = sorted(p.stem for p in (pred / "anomaly_maps").glob("*.npy"))
    expected = sorted(e.name for e in manifest.entries if e.split in ("val", "test"))
    assert names == expected
    amap = np.load(pred / "anomaly_maps" / f"{expected[-1]}.npy")
    assert amap.dtype == np.float32 and amap.shape == (SIZE, SIZE)
    # the map peaks on the defect: its mean inside the mask beats the mean outside
    spot = next(e for e in manifest.entries if e.split == "test" and e.label == 1)
    m = np.load(pred / "anomaly_maps" / f"{spot.name}.npy")
    import cv2
    from sklearn.metrics import roc_auc_score

    mask = cv2.imread(str(manifest.mask_path(spot)), cv2.IMREAD_GRAYSCALE) > 127
    assert roc_auc_score(mask.ravel(), m.ravel()) >= 0.9  # the map ranks the defect's pixels first
    if arch == "conv":  # L2 on noise: the defect stands far above the background
        assert m[mask].mean() > 2 * m[~mask].mean()
