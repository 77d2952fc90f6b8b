"""``defectkit predict classifier|autoencoder --images DIR``: unlabelled images score exactly as in the
split predictions, decisions at the saved val threshold, AutoEncoder maps and overlays at image size."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from defectkit.errors import InputError
from defectkit.finetune.image.folder_predict import (
    FolderPredictConfig,
    format_folder_scores,
    heatmap_overlay,
    list_images,
    predict_images,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/finetune/conftest.py
TINY = {"image_size": 32, "batch_size": 4, "epochs": 1, "device": "cpu", "seed": 0}


@pytest.fixture(scope="module")
def trained(tiny_split: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """best.pt of a tiny classifier and a tiny AutoEncoder trained on ``tiny_split``."""
    import torch

    from defectkit.finetune.image.config import AutoencoderConfig, ClassifierConfig
    from defectkit.finetune.image.train import train_autoencoder, train_classifier

    base = tmp_path_factory.mktemp("folder_runs")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        clf = train_classifier(ClassifierConfig(split=str(tiny_split), output=str(base / "clf"), arch="resnet18",
                                                weights="none", **TINY))
        ae = train_autoencoder(AutoencoderConfig(split=str(tiny_split), output=str(base / "ae"), arch="conv",
                                                 width=8, latent=8, **TINY))
    finally:
        torch.set_num_threads(n)
    return {"classifier": clf / "best.pt", "autoencoder": ae / "best.pt"}


@pytest.fixture(scope="module")
def test_images(tiny_split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test split's images copied flat under their split names, plus a broken PNG and a text file."""
    from defectkit.datasets.split import load_split

    manifest = load_split(tiny_split)
    folder = tmp_path_factory.mktemp("new_images")
    for e in manifest.subset("test"):
        shutil.copyfile(manifest.image_path(e), folder / f"{e.name}.png")
    (folder / "zz_broken.png").write_bytes(b"not a png at all")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _rows(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "image_scores.csv", newline="") as fh:
        return {r["image"]: r for r in csv.DictReader(fh)}


def _split_predictions(model: str, weights: Path, split: Path, out: Path) -> Path:
    from defectkit.finetune.image.config import ImagePredictConfig

    if model == "classifier":
        from defectkit.finetune.image.predict import predict_classifier as predict
    else:
        from defectkit.finetune.image.predict import predict_autoencoder as predict
    return predict(ImagePredictConfig(weights=str(weights), output=str(out), split=str(split), splits=("test",),
                                      device="cpu"))


@pytest.mark.parametrize("model", ["classifier", "autoencoder"])
def test_folder_scores_equal_split_scores(model: str, trained, tiny_split: Path, test_images: Path,
                                          tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    split_dir = _split_predictions(model, trained[model], tiny_split, tmp_path / "split_pred")
    with caplog.at_level(logging.WARNING):
        out = predict_images(FolderPredictConfig(model=model, weights=str(trained[model]), images=str(test_images),
                                                 output=str(tmp_path / "folder_pred"), batch_size=3, device="cpu"))
    assert "zz_broken.png: cannot decode image" in caplog.text
    assert f"1 of {len(list(test_images.glob('*.png')))} image file(s) in {test_images} could not be read" in caplog.text
    expected, got = _rows(split_dir), _rows(out)
    assert sorted(got) == sorted(expected) and len(got) == 13  # every test image, not the broken one
    with open(out / "image_scores.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["image", "file", "score", "pred"]
    meta = json.loads((out / "prediction_meta.json").read_text())
    threshold = meta["threshold"]
    split_meta = json.loads((split_dir / "prediction_meta.json").read_text())
    assert threshold == split_meta["config"]["threshold"] and np.isfinite(threshold)
    assert (meta["count"], meta["skipped"], meta["images"]) == (13, ["zz_broken.png"], str(test_images))
    assert meta["weights"] == str(trained[model].resolve()) and meta["kind"] == split_meta["kind"]
    for name, row in got.items():
        assert float(row["score"]) == pytest.approx(float(expected[name]["score"]), rel=1e-5, abs=1e-6)
        assert row["file"] == f"{name}.png"
        assert int(row["pred"]) == int(float(row["score"]) >= threshold)
        assert row["pred"] == expected[name]["pred"]
    if model == "classifier":
        assert not (out / "anomaly_maps").exists() and not (out / "overlays").exists()
        return
    from PIL import Image

    for name in got:
        amap = np.load(out / "anomaly_maps" / f"{name}.npy")
        np.testing.assert_allclose(amap, np.load(split_dir / "anomaly_maps" / f"{name}.npy"), rtol=1e-4, atol=5e-4)  # batches of 3 vs 16
        with Image.open(out / "overlays" / f"{name}.png") as im:
            assert (im.size, im.mode) == ((64, 64), "RGB")  # the image's own size, not the model's 32
            overlay = np.asarray(im)
        assert not np.array_equal(overlay, np.asarray(Image.open(test_images / f"{name}.png").convert("RGB")))


def test_cli_images_flag(run_cli, trained, test_images: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    code, stdout, err = run_cli("predict", "autoencoder", "--weights", trained["autoencoder"], "--images",
                                test_images, "-o", out, "--no-maps", "--device", "cpu")
    assert code == 0, err
    assert f"wrote {out / 'image_scores.csv'} and overlays/" in stdout and "zz_broken.png" in err
    assert len(_rows(out)) == 13 and len(list((out / "overlays").glob("*.png"))) == 13
    assert not (out / "anomaly_maps").exists()
    code, _, err = run_cli("predict", "classifier", "--weights", trained["classifier"], "--images", test_images,
                           "--split", "s.json", "-o", out)
    assert code == 2 and "--images and --split: give one" in err
    code, _, err = run_cli("predict", "classifier", "--weights", trained["autoencoder"], "--images", test_images,
                           "-o", tmp_path / "wrong")
    assert code == 2 and "this is a anomaly checkpoint, not a classifier one" in err


def test_empty_unreadable_and_clashing_folders(trained, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no images here")
    cfg = dict(model="classifier", weights=str(trained["classifier"]), output=str(tmp_path / "o"), device="cpu")
    with pytest.raises(InputError, match=r"--images .*empty: no image file \(\.png, \.jpg"):
        predict_images(FolderPredictConfig(images=str(empty), **cfg))
    with pytest.raises(InputError, match="folder not found"):
        list_images(tmp_path / "nowhere")
    (empty / "a.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"none of the 1 image file\(s\) could be read"):
        predict_images(FolderPredictConfig(images=str(empty), **cfg))
    (empty / "a.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"a.png: same name stem as a.jpg"):
        list_images(empty)


def test_scores_csv_and_missing_threshold() -> None:
    text = format_folder_scores([("b", "b.png", 0.7), ("a", "a.jpg", 0.2)], 0.5)
    assert text == "image,file,score,pred\na,a.jpg,0.2,0\nb,b.png,0.7,1\n"
    assert format_folder_scores([("a", "a.png", 0.2)], None) == "image,file,score,pred\na,a.png,0.2,\n"


def test_heatmap_overlay_colour_scale() -> None:
    image = np.full((20, 40, 3), 128, np.uint8)
    amap = np.zeros((20, 40), np.float32)
    amap[:, 20:] = 5.0  # at and above the threshold: red; 0: blue
    out = heatmap_overlay(image, amap, vmax=2.0)
    assert out.shape == image.shape and out.dtype == np.uint8
    left, right = out[10, 5].astype(int), out[10, 35].astype(int)
    assert left[2] > left[0] and right[0] > right[2]  # blue-ish vs red-ish
    np.testing.assert_array_equal(heatmap_overlay(image, amap, vmax=None)[10, 35], right)  # min..max scale
    with pytest.raises(ValueError, match="differs from image shape"):
        heatmap_overlay(image, amap[:10], vmax=1.0)


def test_checkpoint_without_threshold_leaves_pred_empty(trained, test_images: Path, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    import torch

    ckpt = torch.load(trained["autoencoder"], map_location="cpu", weights_only=False)
    ckpt["threshold"] = float("nan")
    weights = tmp_path / "no_threshold.pt"
    torch.save(ckpt, weights)
    with caplog.at_level(logging.WARNING):
        out = predict_images(FolderPredictConfig(model="autoencoder", weights=str(weights), images=str(test_images),
                                                 output=str(tmp_path / "p"), device="cpu", save_maps=False))
    assert "holds no usable val threshold (nan): the pred column is left empty" in caplog.text
    rows = _rows(out)
    assert len(rows) == 13 and {r["pred"] for r in rows.values()} == {""}
    assert json.loads((out / "prediction_meta.json").read_text())["threshold"] is None
    assert len(list((out / "overlays").glob("*.png"))) == 13 and not (out / "anomaly_maps").exists()


def test_rerun_into_the_same_folder_removes_stale_maps_and_overlays(trained, test_images: Path,
                                                                   tmp_path: Path) -> None:
    """A second run into the same -o with other images (or --no-maps) leaves no map or overlay of
    an image its image_scores.csv does not list."""
    out = tmp_path / "p"
    cfg = dict(model="autoencoder", weights=str(trained["autoencoder"]), output=str(out), device="cpu")
    predict_images(FolderPredictConfig(images=str(test_images), **cfg))
    assert len(list((out / "overlays").glob("*.png"))) == 13
    assert len(list((out / "anomaly_maps").glob("*"))) == 13
    two = tmp_path / "two"
    two.mkdir()
    for f in sorted(test_images.glob("*.png"))[:2]:
        shutil.copyfile(f, two / f.name)
    (out / "overlays" / "notes.txt").write_text("not ours")  # other files are left alone
    predict_images(FolderPredictConfig(images=str(two), **cfg))
    stems = set(_rows(out))
    assert len(stems) == 2 and {p.stem for p in (out / "overlays").glob("*.png")} == stems
    assert {p.stem for p in (out / "anomaly_maps").glob("*.npy")} == stems
    assert (out / "overlays" / "notes.txt").exists()
    predict_images(FolderPredictConfig(images=str(two), save_maps=False, **cfg))
    assert not list((out / "anomaly_maps").glob("*.npy")) and len(list((out / "overlays").glob("*.png"))) == 2
