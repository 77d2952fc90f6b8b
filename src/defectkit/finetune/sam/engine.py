"""SAM training engine: prompt -> mask decoding, the loss, ``train_one_epoch`` and ``evaluate``.

Training never calls ``Sam.forward`` (it is ``@torch.no_grad()``): it calls the prompt encoder and
mask decoder directly on image embeddings that come from an ``embed(sample, train)`` callable
(the embedding cache when the encoder is frozen, the encoder itself with ``--train all``).
Every dependency is passed in, as in torchvision's ``references/detection/engine.py``.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from defectkit.finetune.sam.data import (
    SamSample,
    input_shape,
    jitter_boxes,
    masks_to_lowres,
    sample_points,
    transform_sample,
)

if TYPE_CHECKING:  # annotations only: torch and segment_anything load inside the functions
    from segment_anything.modeling import PromptEncoder, Sam
    from torch import Tensor

log = logging.getLogger(__name__)

FOCAL_WEIGHT = 20.0
FOCAL_ALPHA = 0.25  # weight of foreground pixels in the focal term (torchvision / SAM default)
FOCAL_GAMMA = 2.0


@dataclass(frozen=True)
class PromptConfig:
    """How prompts are drawn in training: jittered GT boxes, plus points when ``n_pos + n_neg > 0``."""

    box_jitter: float = 0.1
    n_pos: int = 0
    n_neg: int = 0
    multimask: bool = False
    max_instances: int = 16


@dataclass(frozen=True)
class EpochConfig:
    """How :func:`train_one_epoch` draws its work.

    ``batch_size`` images per optimiser step; ``prompts`` how each image's prompts are drawn;
    ``augment`` > 1: each image is seen through a random one of the first ``augment`` dihedral
    transforms (2: left-right flip, 4: both flips, 8: flips and transposes; see
    :func:`~defectkit.finetune.sam.data.dihedral`), its masks and boxes moved with it;
    ``image_size`` the SAM input side; ``fast``: the CPU fast path (see
    :attr:`~defectkit.finetune.sam.config.SamTrainConfig.cpu_fast_path`).
    """

    prompts: PromptConfig = PromptConfig()
    batch_size: int = 4
    image_size: int = 1024
    augment: int = 1
    fast: bool = True


@dataclass
class Optimisation:
    """What one optimiser step updates: ``params`` (gradients clipped together to norm
    ``grad_clip``, 0 = off), the ``optimizer``, a per-step ``scheduler`` and, for fp16 autocast
    (CUDA), a ``torch.amp.GradScaler`` (None: plain float32 steps)."""

    optimizer: Any
    scheduler: Any
    params: Sequence
    scaler: Any = None
    grad_clip: float = 1.0

    def backward(self, loss) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self) -> None:
        """Unscale (AMP), clip, step the optimizer (through the scaler with AMP: an overflowing
        step is skipped and the scale halves), then the scheduler."""
        import torch

        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()


@dataclass(frozen=True)
class TrainData:
    """The training images and, per image, its masks in the decoder's low-res frame (N x L x L
    float32 tensors from :func:`lowres_targets`), aligned."""

    samples: Sequence[SamSample]
    targets: Sequence[Any]


def to_input_coords(xy: np.ndarray, height: int, width: int, image_size: int) -> np.ndarray:
    """Scale pixel coordinates (..., 2k) X,Y of an HxW image into the resized SAM input frame."""
    ih, iw = input_shape(height, width, image_size)
    out = np.asarray(xy, np.float32).copy()
    out[..., 0::2] *= iw / width
    out[..., 1::2] *= ih / height
    return out


_DENSE_PE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def dense_pe(prompt_encoder: PromptEncoder) -> Tensor:
    """``prompt_encoder.get_dense_pe()`` (1 x C x h x w), recomputed only when its input changes.

    The positional encoding depends only on the prompt encoder's random Fourier matrix (a buffer no
    training touches) and the embedding size, yet ``get_dense_pe`` rebuilds it (a 64x64 grid
    through sin and cos) on every call: ~2 % of a vit_b decoder training step on a CPU. It is
    computed in float32 also under autocast (the library's would be float16 on CUDA).
    """
    import torch

    gauss = prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
    # bumped by any in-place write (e.g. load_state_dict); a move to another device changes the pointer
    key = (gauss.data_ptr(), gauss._version, gauss.device, tuple(prompt_encoder.image_embedding_size))
    hit = _DENSE_PE.get(prompt_encoder)
    if hit is None or hit[0] != key:
        with torch.no_grad(), torch.autocast(gauss.device.type, enabled=False):  # float32 under AMP too
            hit = _DENSE_PE[prompt_encoder] = (key, prompt_encoder.get_dense_pe())
    return hit[1]


def decode(
    sam: Sam,
    embedding: Tensor,
    boxes_input: Tensor,
    points: tuple[Tensor, Tensor] | None = None,
    multimask: bool = False,
    fast: bool = True,
) -> tuple[Tensor, Tensor]:
    """Run SAM's prompt encoder and mask decoder for N prompts on one image.

    embedding: 1xCxhxw float tensor; boxes_input: Nx4 XYXY tensor in the input frame; points:
    optional (Nx P x2 coords in the input frame, NxP labels). Returns (low-res logits NxKxLxL,
    predicted IoU NxK) with K = 3 when ``multimask`` else 1 and L = 4 x embedding side.
    ``fast`` (the CPU fast path, same results): :func:`~defectkit.finetune.sam.fast_decoder.fast_mask_decoder`
    when the decoder has the standard structure and the cached :func:`dense_pe`; ``fast=False``:
    segment-anything's own ``MaskDecoder.forward`` and ``get_dense_pe``.
    """
    from defectkit.finetune.sam.fast_decoder import fast_decoder_supported, fast_mask_decoder

    sparse, dense = sam.prompt_encoder(points=points, boxes=boxes_input, masks=None)
    image_pe = dense_pe(sam.prompt_encoder) if fast else sam.prompt_encoder.get_dense_pe()
    if fast and embedding.shape[0] == 1 and fast_decoder_supported(sam.mask_decoder):
        return fast_mask_decoder(sam.mask_decoder, embedding, image_pe, sparse, dense, multimask)
    return sam.mask_decoder(
        image_embeddings=embedding,
        image_pe=image_pe,
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
    )


def mask_loss(logits: Tensor, target: Tensor, iou_pred: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """SAM fine-tuning loss per predicted mask: 20 x focal + dice + MSE(IoU head, true IoU).

    logits, iou_pred: NxKxLxL and NxK; target: NxLxL float in [0, 1] (soft edges from area
    resizing). Returns (total NxK, dict of per-term NxK tensors); the true IoU is not differentiated.
    """
    import torch
    import torch.nn.functional as F

    t = target.unsqueeze(1).expand_as(logits)
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p_t = prob * t + (1 - prob) * (1 - t)
    alpha_t = FOCAL_ALPHA * t + (1 - FOCAL_ALPHA) * (1 - t)
    focal = (alpha_t * ce * (1 - p_t) ** FOCAL_GAMMA).flatten(2).mean(-1)
    inter = (prob * t).flatten(2).sum(-1)
    dice = 1 - (2 * inter + 1) / (prob.flatten(2).sum(-1) + t.flatten(2).sum(-1) + 1)
    with torch.no_grad():
        pb, tb = logits > 0, t > 0.5
        union = (pb | tb).flatten(2).sum(-1).float()
        true_iou = torch.where(
            union > 0, (pb & tb).flatten(2).sum(-1).float() / union.clamp(min=1), torch.ones_like(union)
        )
    mse = (iou_pred.float() - true_iou) ** 2
    total = FOCAL_WEIGHT * focal + dice + mse
    return total, {"focal": focal, "dice": dice, "iou_mse": mse, "true_iou": true_iou}


def _select(total, parts):
    """Keep, per instance, the mask with the lowest loss (multimask training); NxK -> N."""

    idx = total.detach().argmin(dim=1, keepdim=True)
    return total.gather(1, idx).squeeze(1), {k: v.gather(1, idx).squeeze(1) for k, v in parts.items()}


def sample_loss(
    sam: Sam,
    embedding: Tensor,
    sample: SamSample,
    lowres_target: Tensor,
    cfg: EpochConfig,
    rng: np.random.Generator,
) -> tuple[Tensor, dict[str, float]]:
    """Loss of one image's instances (at most ``cfg.prompts.max_instances``, chosen at random).

    embedding: 1 x C x h x w float tensor; lowres_target: N x L x L float tensor (the sample's N
    masks in the decoder's low-res frame). Returns (scalar loss tensor, mean focal / dice /
    iou_mse / true_iou as floats)."""
    import torch

    prompts, image_size = cfg.prompts, cfg.image_size

    n = len(sample.boxes)
    keep = (
        np.sort(rng.choice(n, prompts.max_instances, replace=False))
        if n > prompts.max_instances
        else np.arange(n)
    )
    dev = embedding.device
    boxes = jitter_boxes(sample.boxes[keep], prompts.box_jitter, sample.width, sample.height, rng)
    boxes_t = torch.from_numpy(to_input_coords(boxes, sample.height, sample.width, image_size)).to(dev)
    points = None
    if prompts.n_pos + prompts.n_neg > 0:
        coords, labels = sample_points(
            sample.masks[keep], sample.boxes[keep], prompts.n_pos, prompts.n_neg, rng
        )
        coords = to_input_coords(coords, sample.height, sample.width, image_size)
        points = (torch.from_numpy(coords).to(dev), torch.from_numpy(labels).to(dev))
    logits, iou_pred = decode(sam, embedding, boxes_t, points, prompts.multimask, fast=cfg.fast)
    total, parts = mask_loss(logits.float(), lowres_target[keep].to(dev), iou_pred)
    total, parts = _select(total, parts)
    return total.mean(), {k: float(v.detach().mean()) for k, v in parts.items()}


def lowres_targets(samples: Sequence[SamSample], image_size: int, lowres: int) -> list[Tensor]:
    """Per sample, the NxLxL float32 tensor of its GT masks in the decoder's low-res frame."""
    import torch

    return [torch.from_numpy(masks_to_lowres(s.masks, image_size, lowres)) for s in samples]


def _augmented(sample: SamSample, target, augment: int, rng: np.random.Generator, image_size: int):
    """(sample, low-res target) under a random dihedral transform < ``augment`` (none when 1)."""
    import torch

    k = int(rng.integers(augment)) if augment > 1 else 0
    if k == 0:
        return sample, target
    moved = transform_sample(sample, k)
    return moved, torch.from_numpy(masks_to_lowres(moved.masks, image_size, target.shape[-1]))


def train_one_epoch(
    sam: Sam,
    optim: Optimisation,
    data: TrainData,
    embed: Callable,
    cfg: EpochConfig,
    rng: np.random.Generator,
    desc: str = "train",
) -> dict[str, float]:
    """One pass over ``data`` in a random order, ``cfg.batch_size`` images per optimiser step.

    ``embed(sample, train=True)`` gives the image's 1 x C x h x w embedding; each image's loss is
    back-propagated on its own (divided by the batch size), then ``optim`` steps once per batch
    (the scheduler too). fp16 autocast runs when ``optim.scaler`` is set. Returns the mean loss and
    mean focal / dice / iou_mse / true_iou over the epoch's images.
    """
    import torch

    from defectkit.progress import progress

    order = rng.permutation(len(data.samples))
    batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    device_type = optim.params[0].device.type
    sums: dict[str, float] = {}
    count = 0
    for batch in progress(batches, desc=desc, total=len(batches)):
        optim.optimizer.zero_grad(set_to_none=True)
        for i in batch:
            sample, target = _augmented(data.samples[i], data.targets[i], cfg.augment, rng, cfg.image_size)
            with torch.autocast(device_type=device_type, dtype=torch.float16, enabled=optim.scaler is not None):
                loss, parts = sample_loss(sam, embed(sample, train=True), sample, target, cfg, rng)
            optim.backward(loss / len(batch))
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
        optim.step()
    return {k: v / max(count, 1) for k, v in sums.items()}


def masks_iou_dice(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-instance IoU and Dice of NxHxW bool arrays (1.0 where both are empty)."""
    inter = (pred & gt).reshape(len(gt), -1).sum(1).astype(np.float64)
    ps, gs = pred.reshape(len(gt), -1).sum(1), gt.reshape(len(gt), -1).sum(1)
    union = ps + gs - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    dice = np.where(ps + gs > 0, 2 * inter / np.maximum(ps + gs, 1), 1.0)
    return iou, dice


def predict_from_embedding(
    sam: Sam, embedding: Tensor, boxes_xyxy: np.ndarray, height: int, width: int, multimask: bool = False, fast: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Masks for pixel XYXY boxes (N x 4) on an embedded image (embedding 1 x C x h x w):
    (N x H x W bool numpy, N float32 predicted IoU). With ``multimask`` the mask with the highest
    predicted IoU is kept per box; ``fast``: the CPU fast path of :func:`decode`."""
    import torch

    image_size = sam.image_encoder.img_size
    if len(boxes_xyxy) == 0:
        return np.zeros((0, height, width), bool), np.zeros(0, np.float32)
    boxes = torch.from_numpy(to_input_coords(np.asarray(boxes_xyxy, np.float32), height, width, image_size))
    with torch.no_grad():
        logits, iou = decode(sam, embedding, boxes.to(embedding.device), None, multimask, fast=fast)
        if multimask:
            best = iou.argmax(dim=1, keepdim=True)
            logits = logits.gather(1, best[:, :, None, None].expand(-1, 1, *logits.shape[-2:]))
            iou = iou.gather(1, best)
        full = sam.postprocess_masks(logits.float(), input_shape(height, width, image_size), (height, width))
    return (full[:, 0] > 0).cpu().numpy(), iou[:, 0].float().cpu().numpy()


def evaluate(
    sam: Sam, samples: Sequence[SamSample], embed: Callable, *, multimask: bool = False, fast: bool = True
) -> dict[str, float]:
    """Mask IoU and Dice with ground-truth boxes (no jitter), at the original image size.

    Returns ``{"iou": mean over instances, "dice": ..., "iou/<defect_type>": ..., "dice/<defect_type>": ...}``;
    NaN when there is nothing to evaluate.
    """
    import torch

    per_type: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    sam.eval()
    with torch.no_grad():
        for s in samples:
            masks, _ = predict_from_embedding(
                sam, embed(s, train=False), s.boxes, s.height, s.width, multimask, fast
            )
            per_type.setdefault(s.defect_type, []).append(masks_iou_dice(masks, s.masks))
    out: dict[str, float] = {}
    all_iou = np.concatenate([i for v in per_type.values() for i, _ in v]) if per_type else np.zeros(0)
    all_dice = np.concatenate([d for v in per_type.values() for _, d in v]) if per_type else np.zeros(0)
    out["iou"] = float(all_iou.mean()) if all_iou.size else math.nan
    out["dice"] = float(all_dice.mean()) if all_dice.size else math.nan
    for t in sorted(per_type):
        out[f"iou/{t}"] = float(np.concatenate([i for i, _ in per_type[t]]).mean())
        out[f"dice/{t}"] = float(np.concatenate([d for _, d in per_type[t]]).mean())
    return out


def warmup_cosine(total_steps: int, warmup_steps: int, min_factor: float = 0.01) -> Callable[[int], float]:
    """LR factor per step: linear warmup from ~0 to 1 over ``warmup_steps``, then cosine to ``min_factor``."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
