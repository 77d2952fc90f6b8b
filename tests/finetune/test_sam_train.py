"""SAM fine-tuning with the tiny model: learning, the embedding cache, checkpoints and resume."""

from __future__ import annotations

import csv
import dataclasses

import pytest
import torch
from sam_helpers import convert_coco

from defectkit.finetune.sam import engine as sam_engine
from defectkit.finetune.sam.data import load_coco_samples
from defectkit.finetune.sam.model import build_sam_model, sam_model_registry
from defectkit.finetune.sam.train import SamTrainConfig, make_embedder, train_sam

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/finetune/conftest.py


@pytest.fixture(scope="module")
def coco(tiny_dataset, tiny_split, tmp_path_factory):
    return convert_coco(tiny_dataset, tiny_split, tmp_path_factory.mktemp("sam_labels"))


@pytest.fixture
def encoder_calls(monkeypatch):
    """Counts real image-encoder forward passes (per image)."""
    from segment_anything.modeling import ImageEncoderViT

    calls = {"n": 0}
    forward = ImageEncoderViT.forward

    def counting(self, x):
        calls["n"] += x.shape[0]
        return forward(self, x)

    monkeypatch.setattr(ImageEncoderViT, "forward", counting)
    return calls


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _cfg(coco, tmp_path, **kw):
    base = dict(
        coco=str(coco["train"]),
        val_coco=str(coco["test"]),
        output=str(tmp_path / "run"),
        cache_dir=str(tmp_path / "cache"),
        epochs=2,
        lr=1e-3,
        batch_size=1,
        warmup_steps=5,
    )
    return SamTrainConfig(**{**base, **kw})


def test_training_lowers_loss_and_beats_the_untrained_model(coco, tmp_path):
    # val = held-out test images, scored once at the end (per-epoch val on 12 images costs more than training)
    cfg = _cfg(coco, tmp_path, epochs=100, lr=3e-3, val_coco=None)
    val = load_coco_samples(coco["test"])
    torch.manual_seed(cfg.seed)
    untrained = build_sam_model("tiny")  # the same seeded init train_sam starts from
    before = sam_engine.evaluate(untrained, val, make_embedder(untrained, "all", None, torch.device("cpu")))
    summary = train_sam(cfg)
    rows = _rows(tmp_path / "run" / "metrics.csv")
    assert len(rows) == 100 and {"train_loss", "train_focal", "train_dice", "train_iou_mse"} <= rows[0].keys()
    first, last = float(rows[0]["train_loss"]), float(rows[-1]["train_loss"])
    assert last < 0.5 * first
    best = sam_model_registry["tiny"](checkpoint=tmp_path / "run" / "best.pt")
    after = sam_engine.evaluate(best, val, make_embedder(best, "all", None, torch.device("cpu")))
    assert summary["best_val_iou"] is None
    assert after["iou"] > max(2 * before["iou"], before["iou"] + 0.05), (before, after)


def test_cache_runs_encoder_once_per_image_across_epochs_and_runs(coco, tmp_path, encoder_calls):
    n_images = len(load_coco_samples(coco["train"])) + len(load_coco_samples(coco["test"]))
    summary = train_sam(_cfg(coco, tmp_path, epochs=2))
    assert encoder_calls["n"] == n_images == summary["encoder_calls"]
    files = sorted((tmp_path / "cache").rglob("*.npy"))
    assert len(files) == n_images
    import numpy as np

    emb = np.load(files[0], mmap_mode="r")
    assert emb.dtype == np.float16 and emb.shape == (64, 32, 32)
    # a second run with the same encoder (same seed) reuses every embedding
    summary = train_sam(_cfg(coco, tmp_path, epochs=2, output=str(tmp_path / "run2")))
    assert encoder_calls["n"] == n_images and summary["encoder_calls"] == 0
    # --train all bypasses the cache: encoder runs every step and every evaluation
    train_sam(_cfg(coco, tmp_path, epochs=1, train="all", output=str(tmp_path / "run3")))
    assert encoder_calls["n"] == 2 * n_images
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == n_images


def test_cache_returns_the_stored_fp16_embedding_laid_out_as_tokens(tmp_path):
    from defectkit.finetune.sam.cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path / "cache", model_type="tiny", encoder_hash="h", image_size=256)
    image = tmp_path / "a.png"
    image.write_bytes(b"any bytes: the key hashes the file")
    emb, calls = torch.randn(8, 4, 5), []
    first = cache.get_or_encode(image, lambda: calls.append(1) or emb)
    second = cache.get_or_encode(image, lambda: calls.append(1) or emb)
    assert calls == [1] and (cache.misses, cache.hits) == (1, 1)
    for got in (first, second):
        assert got.dtype == torch.float32 and got.shape == (8, 4, 5)
        assert torch.equal(got, emb.half().float())  # the fp16 values, exactly
        # the decoder reads 1 x HW x C tokens: a view, no copy
        assert got.unsqueeze(0).flatten(2).transpose(1, 2).is_contiguous()


def test_resume_continues_exactly(coco, tmp_path, monkeypatch):
    straight = _cfg(coco, tmp_path, epochs=3, output=str(tmp_path / "a"))
    train_sam(straight)
    calls = {"n": 0}
    real = sam_engine.train_one_epoch

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    interrupted = dataclasses.replace(straight, output=str(tmp_path / "b"))
    monkeypatch.setattr(sam_engine, "train_one_epoch", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        train_sam(interrupted)
    monkeypatch.setattr(sam_engine, "train_one_epoch", real)
    assert len(_rows(tmp_path / "b" / "metrics.csv")) == 2
    train_sam(dataclasses.replace(interrupted, resume=True))
    a = torch.load(tmp_path / "a" / "last.pt")
    b = torch.load(tmp_path / "b" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = _rows(tmp_path / "a" / "metrics.csv"), _rows(tmp_path / "b" / "metrics.csv")
    assert [r["train_loss"] for r in ra] == [r["train_loss"] for r in rb]


def test_multimask_and_points_prompts_train(coco, tmp_path):
    summary = train_sam(_cfg(coco, tmp_path, epochs=2, multimask=True, prompt="box+points", n_points=2))
    rows = _rows(tmp_path / "run" / "metrics.csv")
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert summary["train_mode"] == "decoder"


def test_flip_augmentation_with_frozen_encoder_caches_each_variant_once(coco, tmp_path, encoder_calls):
    from defectkit.datasets.io import read_image
    from defectkit.finetune.sam.cache import EmbeddingCache, encoder_fingerprint
    from defectkit.finetune.sam.data import dihedral, preprocess_image, transform_sample

    train = load_coco_samples(coco["train"])
    cfg = _cfg(coco, tmp_path, epochs=3, augment="flips", val_coco=None)
    assert cfg.augment_variants == 4 and _cfg(coco, tmp_path).augment_variants == 1
    assert _cfg(coco, tmp_path, train="all").augment_variants == 8  # auto: free when the encoder trains
    summary = train_sam(cfg)
    files = list((tmp_path / "cache").rglob("*.npy"))
    # 3 epochs x len(train) draws of 4 variants: each (image, variant) pair is encoded exactly once
    assert encoder_calls["n"] == summary["encoder_calls"] == len(files)
    assert len(train) < len(files) <= 4 * len(train)
    assert summary["cache_hits"] == 3 * len(train) - len(files)
    # a cached flipped embedding is the encoder's output on the flipped image
    torch.manual_seed(cfg.seed)
    sam = build_sam_model("tiny")
    cache = EmbeddingCache(
        tmp_path / "cache", model_type="tiny", encoder_hash=encoder_fingerprint(sam), image_size=256
    )
    hits = [k for k in range(4) if cache.load(cache.key(train[0].path, k)) is not None]
    k = hits[-1]
    with torch.no_grad():
        x, _ = preprocess_image(dihedral(read_image(train[0].path), k), 256)
        expected = sam.image_encoder(x)[0]
    embed = make_embedder(sam, "decoder", cache, torch.device("cpu"))
    got = embed(transform_sample(train[0], k), train=True)[0]
    assert torch.allclose(got, expected, atol=2e-2 * float(expected.abs().max()))


@pytest.mark.parametrize(
    "field,value",
    [
        ("epochs", -1),
        ("steps", -1),
        ("box_jitter", 1.5),
        ("train", "encoder"),
        ("prompt", "points"),
        ("lr", 0.0),
        ("augment", "rotate"),
    ],
)
def test_config_rejects_bad_values(field, value, tmp_path):
    with pytest.raises(ValueError, match=field):
        SamTrainConfig(coco="c.json", output=str(tmp_path), **{field: value})
