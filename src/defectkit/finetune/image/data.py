"""Data side of the image-level trainers: manifest checks, class lists, deterministic samplers.

The sampler reproduces ``DistributedSampler``'s order (``randperm`` seeded with seed + epoch,
padded and sharded by rank), so one process and a torchrun world of size 1 see the same batches,
and a resumed run sees the same order as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from defectkit.datasets.split import SplitManifest, load_split
from defectkit.errors import InputError

log = logging.getLogger(__name__)

GOOD = "good"


def load_manifest(path: str | Path) -> SplitManifest:
    """Load and verify a split manifest (InputError when its fingerprint no longer matches)."""
    return load_split(path, verify=True)


def class_names(manifest: SplitManifest, task: str) -> tuple[str, ...]:
    """Class names by index: ("good", "defect") for ``binary``; good + defect types otherwise."""
    if task == "binary":
        return (GOOD, "defect")
    return (GOOD, *manifest.defect_types)


def class_counts(manifest: SplitManifest, split: str, names: tuple[str, ...]) -> list[int]:
    """Number of images of each class (index order of ``names``) in one split."""
    counts = [0] * len(names)
    for e in manifest.subset(split):
        if e.label == 0:
            counts[0] += 1
        elif len(names) == 2 and names[1] == "defect":
            counts[1] += 1
        else:
            counts[names.index(e.defect_type)] += 1
    return counts


def check_train_classes(manifest_path: str | Path, names: tuple[str, ...], counts: Sequence[int]) -> None:
    """InputError when the train split is empty or a class has no training image."""
    if sum(counts) == 0:
        raise InputError(f"{manifest_path}: the train split is empty (nothing to train on)")
    missing = [n for n, c in zip(names, counts, strict=True) if c == 0]
    if missing:
        hint = (
            " (make the split with --defects-to-train K >= 1 to put defect images in train)"
            if GOOD not in missing
            else ""
        )
        raise InputError(
            f"{manifest_path}: class {', '.join(repr(m) for m in missing)} has 0 images in the train split; "
            f"every class needs at least one{hint}"
        )


class EpochSampler(Sampler[int]):
    """Indices of one epoch: a permutation (or a class-balanced draw with replacement when
    ``weights`` is given, one weight per sample) seeded by ``seed + epoch``, padded to a multiple
    of ``world`` and sharded as ``indices[rank::world]``. Call ``set_epoch`` before each epoch.
    """

    def __init__(
        self,
        n: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        weights: Sequence[float] | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.n, self.seed, self.shuffle, self.rank, self.world = n, seed, shuffle, rank, world
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.weights is not None:
            idx = torch.multinomial(self.weights, self.n, replacement=True, generator=g).tolist()
        elif self.shuffle:
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        total = len(self) * self.world
        idx += (idx * math.ceil(total / max(1, len(idx))))[: total - len(idx)]
        return iter(idx[self.rank : total : self.world])


def balanced_weights(targets: Sequence[int]) -> list[float]:
    """Per-sample weights 1 / (count of its class): each class is drawn equally often."""
    counts: dict[int, int] = {}
    for t in targets:
        counts[t] = counts.get(t, 0) + 1
    return [1.0 / counts[t] for t in targets]


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    sampler: Sampler | None = None,
    workers: int = 0,
    pin_memory: bool = False,
    train: bool = False,
) -> DataLoader:
    """A DataLoader in the given sampler's order (sequential when ``sampler`` is None).

    ``train``: a trailing batch of a single image is dropped (BatchNorm cannot train on one sample).
    """
    n = len(sampler) if sampler is not None else len(dataset)
    drop_last = train and n > batch_size and n % batch_size == 1
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=False,
    )
