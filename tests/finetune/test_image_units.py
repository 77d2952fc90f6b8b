"""Pure pieces of the image-level models: class weights, focal loss, SSIM, smoothing, the val
threshold rule, samplers, the AutoEncoder's shapes and score reductions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from defectkit.finetune.image.data import EpochSampler, balanced_weights
from defectkit.finetune.image.losses import FocalLoss, class_weights, gaussian_smooth, ssim_map
from defectkit.finetune.image.metrics import good_percentile_threshold, val_metrics, val_threshold


@pytest.mark.parametrize(
    ("counts", "method", "expected"),
    [
        ((30, 10), "inverse", (0.5, 1.5)),  # 1/30 : 1/10, normalised to sum 2
        ((5, 5, 5), "inverse", (1.0, 1.0, 1.0)),
        ((30, 10), "none", None),
    ],
)
def test_class_weights_table(counts, method, expected) -> None:
    w = class_weights(counts, method)
    assert (w is None) if expected is None else np.allclose(w, expected)


def test_effective_number_weights_match_cui_et_al() -> None:
    beta = 0.9
    w = class_weights((30, 10), "effective-number", beta=beta)
    raw = np.array([(1 - beta) / (1 - beta**30), (1 - beta) / (1 - beta**10)])
    assert np.allclose(w, raw / raw.sum() * 2)
    # beta -> 0 gives equal weights, beta -> 1 approaches inverse frequency
    assert np.allclose(class_weights((30, 10), "effective-number", beta=1e-9), (1, 1))
    assert np.allclose(class_weights((30, 10), "effective-number", beta=1 - 1e-9), (0.5, 1.5), atol=1e-4)
    with pytest.raises(ValueError, match="must be > 0"):
        class_weights((3, 0), "inverse")


def test_focal_loss_reduces_to_ce_and_down_weights_easy_examples() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 3, generator=g)
    target = torch.randint(0, 3, (16,), generator=g)
    assert torch.allclose(FocalLoss(gamma=0.0)(logits, target), F.cross_entropy(logits, target))
    w = torch.tensor([0.2, 1.0, 3.0])
    assert torch.allclose(
        FocalLoss(gamma=0.0, weight=w)(logits, target),
        (F.cross_entropy(logits, target, reduction="none") * w[target]).mean(),
    )
    easy = torch.tensor([[6.0, 0.0]])
    hard = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([0])
    ratio_easy = FocalLoss(2.0)(easy, t) / F.cross_entropy(easy, t)
    ratio_hard = FocalLoss(2.0)(hard, t) / F.cross_entropy(hard, t)
    assert ratio_easy < 1e-4 and math.isclose(ratio_hard.item(), 0.25, rel_tol=1e-5)


def test_ssim_and_smoothing() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    assert torch.allclose(ssim_map(x, x), torch.ones(2, 32, 32), atol=1e-4)
    assert ssim_map(x, torch.rand(2, 3, 32, 32, generator=g)).mean() < 0.2
    const = torch.full((1, 16, 16), 0.7)
    assert torch.allclose(gaussian_smooth(const, 2.0), const, atol=1e-6)
    spike = torch.zeros(1, 17, 17)
    spike[0, 8, 8] = 1.0
    out = gaussian_smooth(spike, 1.5)
    assert out.shape == spike.shape and math.isclose(out.sum().item(), 1.0, rel_tol=1e-5)
    assert out[0, 8, 8] == out.max() and out[0, 8, 7] == out[0, 8, 9]  # symmetric, peak kept


def test_threshold_rules_on_known_scores() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 0, 1, 1])
    t = val_threshold(labels, scores)
    # F1 is 1.0 nowhere; >= 0.35 gives P 3/4 R 1 (F1 .857), >= 0.8 gives P 1 R 2/3 (F1 .8)
    assert math.isclose(t, (0.3 + 0.35) / 2)
    assert val_metrics(labels, scores, t)["f1"] == pytest.approx(6 / 7)
    assert val_threshold(np.array([0, 1]), np.array([0.1, 0.9])) == pytest.approx(0.5)
    assert good_percentile_threshold(np.arange(101, dtype=float), 99) == pytest.approx(99.0)
    with pytest.raises(ValueError, match="at least one defect"):
        val_threshold(np.zeros(7, int), scores)
    m = val_metrics(np.array([1, 1]), np.array([0.9, 0.1]), 0.5)
    assert m["defect_recall"] == 0.5 and math.isnan(m["auroc"]) and math.isnan(m["good_recall"])


def test_epoch_sampler_matches_distributed_sampler_and_shards() -> None:
    from torch.utils.data.distributed import DistributedSampler

    data = list(range(10))
    for epoch in (0, 3):
        ref = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=7)
        ref.set_epoch(epoch)
        ours = EpochSampler(10, seed=7)
        ours.set_epoch(epoch)
        assert list(ours) == list(ref)
    shards = []
    for rank in range(3):
        s = EpochSampler(10, seed=1, rank=rank, world=3)
        s.set_epoch(2)
        shards.append(list(s))
    assert all(len(x) == 4 for x in shards) and set(sum(shards, [])) == set(range(10))
    a, b = EpochSampler(10, seed=1), EpochSampler(10, seed=1)
    a.set_epoch(1)
    b.set_epoch(2)
    assert list(a) != list(b)


def test_balanced_sampler_draws_classes_equally() -> None:
    targets = [0] * 90 + [1] * 10
    s = EpochSampler(len(targets), seed=0, weights=balanced_weights(targets))
    drawn = []
    for epoch in range(20):
        s.set_epoch(epoch)
        drawn += [targets[i] for i in s]
    assert 0.4 < np.mean(drawn) < 0.6


def test_autoencoder_shapes_and_reductions() -> None:
    from defectkit.finetune.image.model import ConvAutoEncoder, reduce_maps
    from defectkit.finetune.image.train import make_threshold_fn

    model = ConvAutoEncoder(width=4, latent=2).eval()
    x = torch.rand(2, 3, 48, 64)
    y = model(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    maps = torch.zeros(2, 10, 10)
    maps[0, 0, 0] = 5.0
    maps[1] = 1.0
    assert reduce_maps(maps, "max").tolist() == [5.0, 1.0]
    assert reduce_maps(maps, "mean").tolist() == pytest.approx([0.05, 1.0])
    assert reduce_maps(maps, "top1").tolist() == [5.0, 1.0]  # top 1% of 100 pixels = 1 pixel
    fn = make_threshold_fn(good_percentile=100.0)
    assert fn(np.array([0.1, 0.3, 0.2]), np.array([0, 0, 0])) == pytest.approx(0.3)  # no defect: percentile
    assert fn(np.array([0.1, 0.9]), np.array([0, 1])) == pytest.approx(0.5)


def test_autoencoder_threshold_rule_is_evals_and_balanced_by_default() -> None:
    from defectkit.eval.thresholds import ThresholdRule, choose_threshold
    from defectkit.finetune.image.config import AutoencoderConfig
    from defectkit.finetune.image.train import make_threshold_fn

    cfg = AutoencoderConfig(split="-", output="-")
    assert cfg.threshold == "balanced" and cfg.good_percentile == 95.0
    # a val of mostly good images with a tail, and one weak defect among three
    labels = np.array([0] * 54 + [1] * 3)
    scores = np.concatenate([np.linspace(1.0, 3.0, 49), [3.2, 3.5, 3.8, 4.4, 4.7], [3.13, 5.76, 5.84]])
    fn = make_threshold_fn(cfg.good_percentile, cfg.threshold)
    assert fn(scores, labels) == choose_threshold(labels, scores, ThresholdRule("balanced")) < 3.13
    assert make_threshold_fn(95.0, "max-f1")(scores, labels) > 4.7
    assert make_threshold_fn(95.0, "fixed=2.5")(scores, labels) == 2.5
    with pytest.raises(ValueError, match="threshold 'max-f2'"):
        AutoencoderConfig(split="-", output="-", threshold="max-f2")


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_ssim_autoencoder_bottleneck_and_shapes(size: int) -> None:
    from defectkit.finetune.image.model import SSIMAutoEncoder, bergmann_layers

    model = SSIMAutoEncoder(size, latent=100).eval()
    x = torch.rand(2, 3, size, size)
    z = model.encoder(x)
    assert z.shape == (2, 100, 1, 1)  # a dense bottleneck of 100 values (Bergmann et al.)
    y = model(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    strides = [s for _, _, s in bergmann_layers(size)]
    assert size // 2 ** strides.count(2) == 8  # always 8x8 before the bottleneck
    if size == 128:  # the paper's stack as published
        assert bergmann_layers(128)[0] == (32, 4, 2) and len(bergmann_layers(128)) == 8
    with pytest.raises(ValueError, match="power of two"):
        bergmann_layers(96)


def test_standardised_maps_discount_places_that_are_always_hard() -> None:
    from defectkit.finetune.image.model import anomaly_maps, reduce_maps

    image = torch.full((1, 3, 16, 16), 0.5)
    recon = image.clone()
    recon[0, :, 2, 2] = 0.9  # an error at the "rim" ...
    recon[0, :, 12, 12] = 0.8  # ... and a smaller one elsewhere
    raw = anomaly_maps(recon, image, loss="l2", sigma=0.0)
    assert reduce_maps(raw, "max").item() == pytest.approx(0.16)  # the rim wins unstandardised
    mean = torch.zeros(16, 16)
    std = torch.full((16, 16), 0.01)
    mean[2, 2], std[2, 2] = 0.15, 0.05  # good images always err this much at the rim
    z = anomaly_maps(recon, image, loss="l2", sigma=0.0, stats={"mean": mean, "std": std})
    assert z[0, 2, 2] < z[0, 12, 12]  # standardised, the unusual error wins
    floor = 0.1 * std.mean().item()
    assert z[0, 12, 12].item() == pytest.approx(0.09 / (0.01 + floor), rel=1e-5)
    assert z[0, 0, 0].item() == pytest.approx(0.0)
