"""``defectkit finetune sam`` settings: :class:`SamTrainConfig` (saved to the run's ``config.json``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

TRAIN_MODES = ("decoder", "decoder+prompt", "all")
PROMPT_MODES = ("box", "box+points")


@dataclass(frozen=True)
class SamTrainConfig:
    """Everything a SAM fine-tuning run depends on (saved to ``config.json``).

    ``train``: which parts learn - ``decoder`` (mask decoder), ``decoder+prompt`` (plus the prompt
    encoder) or ``all`` (plus the image encoder; bypasses the embedding cache). Without a checkpoint
    every part starts from a seeded random init. A frozen random encoder is a fixed random-feature
    extractor (cheap, but ``tiny`` then reaches only ~0.4 test IoU); the ``tiny`` demo trains
    ``all`` (its encoder costs ~0.06 s CPU per image step; a ``vit_b`` encoder step is ~100x a
    decoder step, so keep it frozen and cached there).
    ``augment``: dihedral flips/transposes of each training image with its masks and boxes -
    ``none``, ``hflip`` (2 variants), ``flips`` (4) or ``dihedral`` (8); ``auto`` = ``dihedral``
    with ``train="all"`` (free: no cache) and ``none`` with a frozen encoder (each variant would be
    encoded and cached once, up to 8x the encoder calls).
    ``cache_dir`` None = ``<parent of output>/.sam_cache`` (shared by the runs next to this one).
    Training length: ``steps`` optimiser steps rounded up to whole epochs, or ``epochs`` when > 0
    (it wins); see ``epochs_for``.

    ``cpu_fast_path`` (default on) switches the three speed tricks of SAM training, all measured on
    a CPU (``benchmarks/sam_bench.py``), none of which changes a result beyond float rounding:

    1. the fast mask decoder (:mod:`~defectkit.finetune.sam.fast_decoder`): segment-anything's
       ``MaskDecoder`` repeats the image embedding once per prompt and runs its two-way
       transformer on the copies; the fast one runs the image side once, batched over the prompts
       (a vit_b decoder step takes ~2x less CPU with one box, ~2.4x with three; tests check it
       matches the library's outputs and gradients);
    2. the dense positional-encoding cache (:func:`~defectkit.finetune.sam.engine.dense_pe`):
       ``get_dense_pe`` rebuilds a 64x64 sin/cos grid every call though it only changes with the
       prompt encoder's Fourier matrix; the cache is keyed on that tensor's ``_version``, which any
       in-place write (``load_state_dict``) bumps (~2 % of a vit_b decoder step);
    3. glibc ``mallopt`` (:func:`~defectkit.runtime.reuse_freed_memory`, CPU runs only,
       process-wide): keep freed blocks of a few MiB for reuse instead of unmapping them, so a step
       does not page-fault its tensors in again (~10 % of a vit_b decoder step).

    Off runs segment-anything's own code paths and glibc's defaults (for comparison or debugging).
    """

    coco: str
    output: str
    val_coco: str | None = None
    model_type: str = "tiny"
    checkpoint: str | None = None
    train: str = "decoder"
    steps: int = 400
    epochs: int = 0
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 20
    batch_size: int = 4
    prompt: str = "box"
    n_points: int = 1
    box_jitter: float = 0.1
    multimask: bool = False
    max_instances: int = 16
    grad_clip: float = 1.0
    device: str | None = None
    seed: int = 0
    cache_dir: str | None = None
    dataset: str | None = None
    resume: bool = False
    augment: str = "auto"
    cpu_fast_path: bool = True

    def __post_init__(self) -> None:
        from defectkit.finetune.sam.data import AUGMENTATIONS
        from defectkit.finetune.sam.model import MODEL_TYPES

        checks = [
            (self.model_type in MODEL_TYPES, "model_type", f"expected one of {MODEL_TYPES}"),
            (self.train in TRAIN_MODES, "train", f"expected one of {TRAIN_MODES}"),
            (self.prompt in PROMPT_MODES, "prompt", f"expected one of {PROMPT_MODES}"),
            (self.steps >= 0, "steps", "must be >= 0"),
            (self.epochs >= 0, "epochs", "must be >= 0"),
            (self.steps > 0 or self.epochs > 0, "steps", "give a training length (steps or epochs > 0)"),
            (self.lr > 0, "lr", "must be > 0"),
            (self.batch_size >= 1, "batch_size", "must be >= 1"),
            (0 <= self.box_jitter < 1, "box_jitter", "must be in [0, 1)"),
            (self.n_points >= 1, "n_points", "must be >= 1"),
            (self.max_instances >= 1, "max_instances", "must be >= 1"),
            (self.warmup_steps >= 0, "warmup_steps", "must be >= 0"),
            (self.grad_clip >= 0, "grad_clip", "must be >= 0"),
            (
                self.augment in ("auto", *AUGMENTATIONS),
                "augment",
                f"expected auto or one of {tuple(AUGMENTATIONS)}",
            ),
        ]
        for ok, name, why in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r}: {why}")

    def epochs_for(self, n_train: int) -> int:
        """Whole epochs for ``n_train`` training images (``batch_size`` per optimiser step)."""
        from defectkit.runtime import epochs_for_budget

        return epochs_for_budget(self.steps, self.epochs, math.ceil(n_train / self.batch_size))

    @property
    def augment_variants(self) -> int:
        """Dihedral variants drawn from per training image: ``auto`` = all 8 when the image encoder
        trains (no cache, so they are free), none with a frozen (cached) encoder."""
        from defectkit.finetune.sam.data import AUGMENTATIONS

        if self.augment == "auto":
            return AUGMENTATIONS["dihedral" if self.train == "all" else "none"]
        return AUGMENTATIONS[self.augment]

    @property
    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.output).resolve().parent / ".sam_cache"
