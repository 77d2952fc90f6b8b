"""The split manifest: one deterministic train/val/test assignment shared by every model.

Protocols:
* ``defects_to_train = 0`` (unsupervised): train = the dataset's train-good images only.
* ``defects_to_train = K > 0`` (the course-study protocol): K randomly chosen test images of
  each defect type move to train; test keeps everything not moved.

val is carved from the train side only (stratified by defect type, at least one good image),
never from test. A dataset with its own validation images (MVTec AD 2's ``validation/good``, split
"validation" in the index) puts exactly those in val as its good images; only moved defect images
are then carved from the train side. The manifest records seed, K, val fraction, dataset path and a content
fingerprint of the listed files, so later stages can refuse a manifest that no longer matches.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from defectkit.datasets.mvtec import GOOD, DatasetIndex, ImageRecord
from defectkit.errors import InputError
from defectkit.fileio import atomic_write_json, read_json, sha256_file

log = logging.getLogger(__name__)

FORMAT = "defectkit-split/1"
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    """How to split. ``category`` is needed only when the dataset folder holds several categories."""

    defects_to_train: int = 0
    val_fraction: float = 0.2
    seed: int = 0
    category: str | None = None

    def __post_init__(self) -> None:
        if self.defects_to_train < 0:
            raise ValueError(f"defects_to_train must be >= 0, got {self.defects_to_train}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class SplitEntry:
    """One image of the manifest. Paths are relative to the dataset (category) folder, POSIX style.

    name: unique flat name (``test_broken_large_000``); split: train|val|test (this manifest's);
    source_split: train|test|validation (the dataset's own split); label: 0 good, 1 defect.
    """

    name: str
    image: str
    mask: str | None
    defect_type: str
    label: int
    split: str
    source_split: str
    width: int
    height: int
    channels: int


@dataclass(frozen=True)
class SplitManifest:
    """A loaded or freshly made split. ``dataset`` is the absolute category folder."""

    dataset: Path
    category: str
    seed: int
    defects_to_train: int
    val_fraction: float
    fingerprint: str
    defect_types: tuple[str, ...]
    entries: tuple[SplitEntry, ...]

    def subset(self, split: str) -> tuple[SplitEntry, ...]:
        """Entries of one split ("train", "val" or "test"), in manifest order (sorted by name)."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLIT_NAMES}")
        return tuple(e for e in self.entries if e.split == split)

    def image_path(self, entry: SplitEntry) -> Path:
        return self.dataset / entry.image

    def mask_path(self, entry: SplitEntry) -> Path | None:
        return None if entry.mask is None else self.dataset / entry.mask

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {defect_type: count}} for the three splits."""
        out: dict[str, dict[str, int]] = {s: {} for s in SPLIT_NAMES}
        for e in self.entries:
            out[e.split][e.defect_type] = out[e.split].get(e.defect_type, 0) + 1
        return {s: dict(sorted(c.items())) for s, c in out.items()}

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "dataset": str(self.dataset),
            "category": self.category,
            "seed": self.seed,
            "defects_to_train": self.defects_to_train,
            "val_fraction": self.val_fraction,
            "fingerprint": self.fingerprint,
            "defect_types": list(self.defect_types),
            "counts": self.counts(),
            "images": [asdict(e) for e in self.entries],
        }

    def save(self, path: str | Path) -> Path:
        """Write the manifest as JSON (atomically). Same inputs give byte-identical files."""
        return atomic_write_json(path, self.to_dict())


def fingerprint_from_hashes(hashes: dict[str, str]) -> str:
    """SHA-256 over the sorted (relative path, content SHA-256) pairs: the manifest's fingerprint."""
    h = hashlib.sha256()
    for rel in sorted(hashes):
        h.update(rel.encode())
        h.update(b"\0")
        h.update(hashes[rel].encode())
        h.update(b"\n")
    return h.hexdigest()


def data_fingerprint(dataset: Path, rel_paths: list[str]) -> str:
    """:func:`fingerprint_from_hashes` of the given files (relative to ``dataset``), read from disk."""
    hashes = {}
    for rel in rel_paths:
        p = dataset / rel
        if not p.is_file():
            raise InputError(f"{p}: listed in the split manifest but missing from the dataset")
        hashes[rel] = sha256_file(p)
    return fingerprint_from_hashes(hashes)


def dataset_fingerprint(root: str | Path) -> str:
    """:func:`fingerprint_from_hashes` of every file under ``root`` (names starting with "." skipped):
    changes when an image or mask is edited, added, renamed or deleted."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    rels = (p.relative_to(root) for p in sorted(root.rglob("*")) if p.is_file())
    files = [r.as_posix() for r in rels if not any(part.startswith(".") for part in r.parts)]
    return data_fingerprint(root, files)


def _entry(rec: ImageRecord, root: Path, split: str) -> SplitEntry:
    return SplitEntry(
        name=rec.name,
        image=rec.image_path.relative_to(root).as_posix(),
        mask=None if rec.mask_path is None else rec.mask_path.relative_to(root).as_posix(),
        defect_type=rec.defect_type,
        label=rec.label,
        split=split,
        source_split=rec.split,
        width=rec.width,
        height=rec.height,
        channels=rec.channels,
    )


def _carve_val(
    train_side: list[ImageRecord], fraction: float, rng: random.Random, carve_good: bool = True
) -> set[str]:
    """Names moved to val: round(n * fraction) per defect type (>= 1 good), keeping >= 1 in train.
    ``carve_good=False`` (the dataset has its own validation goods) leaves the good images in train."""
    if fraction <= 0:
        return set()
    by_type: dict[str, list[ImageRecord]] = {}
    for r in train_side:
        if carve_good or r.defect_type != GOOD:
            by_type.setdefault(r.defect_type, []).append(r)
    val: set[str] = set()
    for defect, recs in sorted(by_type.items()):
        n = int(round(len(recs) * fraction))
        if defect == GOOD:
            n = max(n, 1)
        n = min(n, len(recs) - 1)
        if n > 0:
            val.update(r.name for r in rng.sample(recs, n))
    return val


def make_split(index: DatasetIndex, config: SplitConfig = SplitConfig()) -> SplitManifest:
    """Assign every image of one category to train/val/test (deterministic given ``config.seed``)."""
    cats = index.categories
    category = config.category or (cats[0] if len(cats) == 1 else None)
    if category is None:
        raise InputError(
            f"{index.root}: holds several categories {list(cats)}; split one category folder (--category "
            "NAME), or all of them into one manifest with --categories all"
        )
    if category not in cats:
        raise InputError(f"{index.root}: no category {category!r} (found {list(cats)})")
    root = index.category_root(category)
    recs = index.select(category=category)
    rng = random.Random(config.seed)
    train_side = [r for r in recs if r.split == "train"]
    if not train_side:
        raise InputError(f"{root / 'train'}: no training images")
    moved: set[str] = set()
    for defect in index.defect_types(category):
        pool = [r for r in recs if r.split == "test" and r.defect_type == defect]
        k = config.defects_to_train
        if k > len(pool) - 1 and k > 0:
            raise InputError(
                f"{root / 'test' / defect}: cannot move {k} images to train, only {len(pool)} "
                "(at least one must stay in test)"
            )
        moved.update(r.name for r in rng.sample(pool, k))
    train_side += [r for r in recs if r.name in moved]
    own_val = {r.name for r in recs if r.split == "validation"}  # MVTec AD 2's validation/good
    val = _carve_val(sorted(train_side, key=lambda r: r.name), config.val_fraction, rng, not own_val)
    val |= own_val
    if moved and not moved & val:
        k = config.defects_to_train
        hint = f"--val-fraction {0.5 / k + 0.01:.2f} puts one per defect type in val" if k > 1 else (
            "one image per type cannot be split between train and val: move K >= 2")
        log.warning(
            "%s: val holds no defect image (%d per defect type moved to train, val fraction %g): "
            "thresholds and best checkpoints are then chosen on good images alone; %s",
            root, k, config.val_fraction, hint,
        )
    entries = []
    for r in recs:
        split = "test" if r.split == "test" and r.name not in moved else ("val" if r.name in val else "train")
        entries.append(_entry(r, root, split))
    entries.sort(key=lambda e: e.name)
    files = [e.image for e in entries] + [e.mask for e in entries if e.mask]
    return SplitManifest(
        dataset=root,
        category=category,
        seed=config.seed,
        defects_to_train=config.defects_to_train,
        val_fraction=config.val_fraction,
        fingerprint=data_fingerprint(root, files),
        defect_types=index.defect_types(category),
        entries=tuple(entries),
    )


def _check_unique(p: Path, entries: tuple[SplitEntry, ...]) -> None:
    """InputError when an image name or file is listed twice (two COCO images would share an id)."""
    for field_name in ("name", "image"):
        seen: set[str] = set()
        for e in entries:
            value = getattr(e, field_name)
            if value in seen:
                raise InputError(
                    f"{p}: image {field_name} {value!r} is listed more than once (each image once; "
                    "run 'defectkit split' again)"
                )
            seen.add(value)


def load_split(path: str | Path, *, verify: bool = True) -> SplitManifest:
    """Load a split manifest. With ``verify`` the listed files are re-hashed and a manifest whose
    fingerprint no longer matches the data is refused with an InputError naming the manifest."""
    p = Path(path)
    raw = read_json(p, "split manifest")
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise InputError(f"{p}: not a defectkit split manifest (expected format {FORMAT!r})")
    try:
        entries = tuple(SplitEntry(**e) for e in raw["images"])
        manifest = SplitManifest(
            dataset=Path(raw["dataset"]),
            category=raw["category"],
            seed=int(raw["seed"]),
            defects_to_train=int(raw["defects_to_train"]),
            val_fraction=float(raw["val_fraction"]),
            fingerprint=raw["fingerprint"],
            defect_types=tuple(raw["defect_types"]),
            entries=entries,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{p}: malformed split manifest ({exc})") from exc
    _check_unique(p, entries)
    if verify:
        if not manifest.dataset.is_dir():
            raise InputError(f"{p}: dataset folder {manifest.dataset} no longer exists")
        files = [e.image for e in entries] + [e.mask for e in entries if e.mask]
        if data_fingerprint(manifest.dataset, files) != manifest.fingerprint:
            raise InputError(
                f"{p}: fingerprint no longer matches the data in {manifest.dataset} "
                "(files changed since the split was made; run 'defectkit split' again)"
            )
    return manifest
