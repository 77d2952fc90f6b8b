"""Losses of the image-level models: class weights for long tails, focal loss, SSIM.

Pure torch/numpy functions; nothing here reads files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def class_weights(counts: Sequence[int], method: str, *, beta: float = 0.999) -> np.ndarray | None:
    """Per-class loss weights from training counts, normalised to sum to the number of classes.

    ``inverse``: w_c ~ 1 / n_c. ``effective-number`` (Cui et al., CVPR 2019): w_c ~ (1 - beta) /
    (1 - beta ** n_c). ``none``: returns None. Every count must be > 0 (checked by the caller).
    """
    if method == "none":
        return None
    n = np.asarray(counts, dtype=np.float64)
    if (n <= 0).any():
        raise ValueError(f"class counts must be > 0 to weight classes, got {list(counts)}")
    if method == "inverse":
        w = 1.0 / n
    elif method == "effective-number":
        w = (1.0 - beta) / (1.0 - np.power(beta, n))
    else:
        raise ValueError(f"unknown class-weight method {method!r}")
    return w / w.sum() * len(n)


class FocalLoss(nn.Module):
    """Multi-class focal loss (Lin et al. 2017): mean over the batch of -w_y (1 - p_y)^gamma log p_y.

    logits: NxC float; target: N int64 class indices; weight: optional C per-class weights.
    gamma = 0 and no weight equals cross-entropy.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight if weight is not None else None, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        loss = -((1.0 - logp.exp()).clamp_min(0) ** self.gamma) * logp
        if self.weight is not None:
            loss = loss * self.weight[target]
        return loss.mean()


def build_classification_loss(
    name: str, counts: Sequence[int], weighting: str, *, beta: float = 0.999, gamma: float = 2.0
) -> nn.Module:
    """``ce`` | ``weighted-ce`` | ``focal`` with class weights from ``counts`` (see class_weights)."""
    w = class_weights(counts, weighting, beta=beta)
    weight = None if w is None else torch.tensor(w, dtype=torch.float32)
    if name in ("ce", "weighted-ce"):
        return nn.CrossEntropyLoss(weight=weight)
    if name == "focal":
        return FocalLoss(gamma=gamma, weight=weight)
    raise ValueError(f"unknown loss {name!r}")


def _gaussian_kernel(size: int, sigma: float, device, dtype) -> torch.Tensor:
    """1-D Gaussian of ``size`` taps, summing to 1."""
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_map(x: torch.Tensor, y: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM (Wang et al. 2004) of images in [0, 1]: NxCxHxW -> NxHxW (channel mean).

    Uses a Gaussian window with reflect padding so the map has the input's size. The window is
    separable, so the five local moments are blurred with one 1-D pass per axis (one grouped
    convolution each for all of them): the same values as the 2-D window, ~3x cheaper on a CPU.
    """
    c = x.shape[1]
    g = _gaussian_kernel(window, sigma, x.device, x.dtype)
    pad = window // 2
    k = 5 * c
    t = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    t = F.pad(t, (pad, pad, pad, pad), mode="reflect")
    t = F.conv2d(t, g.view(1, 1, 1, -1).expand(k, 1, 1, window), groups=k)
    t = F.conv2d(t, g.view(1, 1, -1, 1).expand(k, 1, window, 1), groups=k)
    mu_x, mu_y, xx, yy, xy = t.split(c, dim=1)
    sxx = xx - mu_x**2
    syy = yy - mu_y**2
    sxy = xy - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean(dim=1)


def reconstruction_error_map(recon: torch.Tensor, image: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-pixel reconstruction error, Nx3xHxW in [0, 1] -> NxHxW float (higher = more anomalous).

    ``l2``: squared error averaged over channels; ``ssim``: (1 - SSIM) / 2;
    ``l2+ssim``: the sum of both.
    """
    parts = []
    if "l2" in kind:
        parts.append(((recon - image) ** 2).mean(dim=1))
    if "ssim" in kind:
        parts.append((1.0 - ssim_map(recon, image)) / 2.0)
    if not parts:
        raise ValueError(f"unknown reconstruction loss {kind!r}")
    return sum(parts)


class ReconstructionLoss(nn.Module):
    """Mean of ``reconstruction_error_map`` over pixels and batch: ``loss(recon, image)``."""

    def __init__(self, kind: str = "l2") -> None:
        super().__init__()
        self.kind = kind

    def forward(self, recon: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return reconstruction_error_map(recon, image, self.kind).mean()


def gaussian_smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of NxHxW maps (reflect padding, kernel radius 3 sigma)."""
    if sigma <= 0:
        return maps
    radius = max(1, int(math.ceil(3 * sigma)))
    radius = min(radius, maps.shape[-1] - 1, maps.shape[-2] - 1)
    x = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    t = maps[:, None]
    t = F.conv2d(F.pad(t, (radius, radius, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    t = F.conv2d(F.pad(t, (0, 0, radius, radius), mode="reflect"), g.view(1, 1, -1, 1))
    return t[:, 0]
