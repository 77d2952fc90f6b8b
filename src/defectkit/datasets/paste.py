"""Copy-paste of real defect instances: more defective training images from a few real ones.

With 15 defective training images, a detector or a segmenter sees each defect shape a handful of
times. This module cuts each defect instance (one connected component of a train-split mask) out
of its image and pastes it, with a feathered edge, onto train-good images of the same category,
moved by a placement rule:

* ``same``: where it was (parts that always sit in the same pose, e.g. transistor, cable);
* ``dihedral``: one of the 8 exact flips / quarter turns of the whole frame (objects seen from
  above whose pose may turn by 90 degrees, and textures);
* ``rotate``: any angle about the image centre, and a flip (round objects seen from above, e.g.
  bottle, whose rim the instance stays on; and textures).

Only the split's ``train`` images are used, both as instance sources and as backgrounds, so
nothing from val or test leaks into training. The result is a derived dataset folder (the
original files linked, the pasted images and their masks added under ``test/<defect>/paste_*``)
and a split manifest that lists the pasted images in ``train``; every later command (convert,
finetune, predict, eval) works on them unchanged, and val/test are exactly the original ones.

Conventions: images are HWC uint8 RGB, masks HxW bool, angles in degrees counter-clockwise about
the pixel centre of the image ((W-1)/2, (H-1)/2).
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from defectkit.datasets.io import encode_png, read_image, read_mask
from defectkit.datasets.split import SplitEntry, SplitManifest, data_fingerprint, load_split
from defectkit.errors import InputError
from defectkit.fileio import atomic_dir, atomic_write_bytes, atomic_write_json, ensure_dir
from defectkit.progress import progress

log = logging.getLogger(__name__)

PLACEMENTS = ("same", "dihedral", "rotate")
PREFIX = "paste_"


@dataclass(frozen=True)
class PasteConfig:
    """``defectkit paste``: ``split`` manifest in, ``output`` folder out (``output/<category>/``,
    ``output/split.json``, ``output/paste.json``). ``per_type``: pasted images per defect type;
    ``instances``: instances pasted into one image (1-``instances``, drawn per image);
    ``feather``: Gaussian sigma in pixels of the pasted edge; ``min_area``: smaller mask
    components (pixels) are not used as instances."""

    split: str
    output: str
    per_type: int = 40
    placement: str = "rotate"
    instances: int = 1
    feather: float = 1.5
    min_area: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_type < 1:
            raise ValueError(f"per_type must be >= 1, got {self.per_type}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
        if self.instances < 1:
            raise ValueError(f"instances must be >= 1, got {self.instances}")
        if not 0 <= self.feather <= 20:
            raise ValueError(f"feather must be in [0, 20] pixels, got {self.feather}")
        if self.min_area < 1:
            raise ValueError(f"min_area must be >= 1 pixel, got {self.min_area}")


def mask_components(mask: np.ndarray, min_area: int = 1) -> list[np.ndarray]:
    """Connected components (8-connected) of an HxW bool mask with at least ``min_area`` pixels,
    each as an HxW bool mask, largest first (ties: top-left first)."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    keep.sort(key=lambda i: (-int(stats[i, cv2.CC_STAT_AREA]), int(stats[i, 1]), int(stats[i, 0])))
    return [labels == i for i in keep]


def move(image: np.ndarray, mask: np.ndarray, placement: str, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Move a whole frame (HWC uint8 image and its HxW bool mask) by one draw of ``placement``.
    ``rotate`` interpolates the image bilinearly and the mask by nearest neighbour; ``dihedral``
    and ``same`` are exact. Square frames only for quarter turns (``dihedral`` on a non-square
    frame uses flips only)."""
    if placement == "same":
        return image, mask
    if placement == "dihedral":
        k = rng.randrange(8 if image.shape[0] == image.shape[1] else 4)
        if k & 4:
            image, mask = np.swapaxes(image, 0, 1), mask.T
        if k & 1:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if k & 2:
            image, mask = image[::-1], mask[::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)
    import cv2

    h, w = mask.shape
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), rng.uniform(0.0, 360.0), 1.0)
    image = cv2.warpAffine(np.ascontiguousarray(image), m, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.ascontiguousarray(mask).astype(np.uint8), m, (w, h), flags=cv2.INTER_NEAREST)
    return image, mask.astype(bool)


def blend(target: np.ndarray, source: np.ndarray, mask: np.ndarray, feather: float) -> np.ndarray:
    """``source`` pasted onto ``target`` (both HWC uint8, same shape) inside ``mask`` (HxW bool),
    the edge softened by a Gaussian of sigma ``feather`` pixels (0 = hard edge). Pixels farther
    than ~3 sigma from the mask keep the target's values exactly."""
    alpha = mask.astype(np.float32)
    if feather > 0:
        import cv2

        alpha = np.maximum(alpha, cv2.GaussianBlur(alpha, (0, 0), feather))
        alpha[alpha < 1e-3] = 0.0
    alpha = alpha[:, :, None]
    out = alpha * source.astype(np.float32) + (1.0 - alpha) * target.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def paste_instances(
    background: np.ndarray,
    sources: list[tuple[np.ndarray, np.ndarray]],
    placement: str,
    feather: float,
    rng: random.Random,
    min_area: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste each ``(image HWC uint8, instance mask HxW bool)`` of ``sources`` onto ``background``
    (HWC uint8) after one draw of ``placement`` each. Returns the new image and the union of the
    pasted masks (HxW bool). An instance moved (almost) out of the frame is drawn again, up to 10
    times; sources of another size are resized to the background's."""
    import cv2

    h, w = background.shape[:2]
    image, union = background.copy(), np.zeros((h, w), bool)
    for src, src_mask in sources:
        if src.shape[:2] != (h, w):
            src = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)
            src_mask = cv2.resize(src_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        for _ in range(10):
            moved, moved_mask = move(src, src_mask, placement, rng)
            if moved_mask.sum() >= min(min_area, int(src_mask.sum())):
                break
        image = blend(image, moved, moved_mask, feather)
        union |= moved_mask
    return image, union


@dataclass(frozen=True)
class _Instance:
    entry: SplitEntry
    component: int  # index into mask_components(mask, min_area)


def _link(src: Path, dst: Path) -> None:
    """dst -> src as a symlink (a copy where links are not allowed); an existing dst is replaced."""
    ensure_dir(dst.parent)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    try:
        os.symlink(src, tmp)
    except OSError:
        tmp.write_bytes(src.read_bytes())
    os.replace(tmp, dst)


@dataclass(frozen=True)
class PasteResult:
    """What :func:`paste_split` wrote: the derived ``dataset`` folder, its ``split`` manifest and
    the number of pasted images per defect type."""

    dataset: Path
    split: Path
    pasted: dict[str, int]


class _Reader:
    """Reads each instance's source image / mask component once (HWC uint8 RGB, HxW bool)."""

    def __init__(self, manifest: SplitManifest, min_area: int) -> None:
        self.manifest, self.min_area = manifest, min_area
        self._images: dict[str, np.ndarray] = {}
        self._comps: dict[str, list[np.ndarray]] = {}

    def image(self, e: SplitEntry) -> np.ndarray:
        if e.name not in self._images:
            self._images[e.name] = read_image(self.manifest.image_path(e))
        return self._images[e.name]

    def components(self, e: SplitEntry) -> list[np.ndarray]:
        if e.name not in self._comps:
            self._comps[e.name] = mask_components(read_mask(self.manifest.dataset / e.mask).mask, self.min_area)
        return self._comps[e.name]

    def component(self, inst: _Instance) -> np.ndarray:
        return self.components(inst.entry)[inst.component]


def _instances(manifest: SplitManifest, reader: _Reader) -> dict[str, list[_Instance]]:
    """Every usable instance of the train split, by defect type (sorted by image name)."""
    out: dict[str, list[_Instance]] = {}
    for e in manifest.subset("train"):
        if e.label == 1 and e.mask:
            out.setdefault(e.defect_type, []).extend(_Instance(e, i) for i in range(len(reader.components(e))))
    return out


def _plan(manifest: SplitManifest, config: PasteConfig, reader: _Reader) -> list[tuple[str, SplitEntry, list[_Instance]]]:
    """(defect type, background entry, instances) per pasted image, drawn from ``config.seed``."""
    goods = [e for e in manifest.subset("train") if e.label == 0]
    if not goods:
        raise InputError(f"{config.split}: the train split holds no good image to paste onto")
    by_type = _instances(manifest, reader)
    if not by_type:
        raise InputError(
            f"{config.split}: the train split holds no defect instance to paste (of at least "
            f"{config.min_area} px); make the split with 'defectkit split --defects-to-train K'"
        )
    if missing := [d for d in manifest.defect_types if d not in by_type]:
        log.warning("paste: %d defect type(s) without a train instance, not pasted: %s", len(missing), missing)
    rng = random.Random(config.seed)
    plan = []
    for defect in sorted(by_type):
        pool = by_type[defect]
        for _ in range(config.per_type):
            chosen = [rng.choice(pool) for _ in range(rng.randint(1, config.instances))]
            plan.append((defect, rng.choice(goods), chosen))
    return plan


def _check_output(out: Path, dataset: Path) -> None:
    """InputError unless ``out`` can be replaced whole: it must not hold or lie inside the dataset,
    and an existing non-empty folder must be an earlier paste output (with ``paste.json``)."""
    dataset = dataset.resolve()
    if out == dataset or out in dataset.parents or dataset in out.parents:
        raise InputError(f"{out}: the paste output must lie outside the dataset folder {dataset}")
    if out.is_dir() and any(out.iterdir()) and not (out / "paste.json").is_file():
        raise InputError(f"{out}: exists and is not an earlier paste output (no paste.json); the output "
                         "folder is replaced whole, so give a new folder")


def paste_split(config: PasteConfig) -> PasteResult:
    """Write ``config.output``: ``<category>/`` (the split's files linked + the pasted images and
    masks), ``split.json`` (the original entries, unchanged, plus the pasted ones in train) and
    ``paste.json`` (config and, per pasted image, its background and instances). The folder is
    built aside and swapped in whole, so an interrupted run leaves the previous output intact."""
    manifest = load_split(config.split)
    out = Path(config.output).resolve()
    _check_output(out, manifest.dataset)
    reader = _Reader(manifest, config.min_area)
    plan = _plan(manifest, config, reader)
    final_root = out / manifest.category
    rng = random.Random(config.seed + 1)
    pasted, records, counts = [], [], {}
    with atomic_dir(out) as tmp:
        root = tmp / manifest.category
        for e in manifest.entries:
            for rel in (e.image, e.mask):
                if rel:
                    _link(manifest.dataset / rel, root / rel)
        for defect, bg, chosen in progress(plan, desc="paste"):
            i = counts.get(defect, 0)
            counts[defect] = i + 1
            sources = [(reader.image(c.entry), reader.component(c)) for c in chosen]
            background = read_image(manifest.image_path(bg))  # not cached: each is used about once
            image, mask = paste_instances(background, sources, config.placement, config.feather, rng)
            entry = SplitEntry(
                name=f"{PREFIX}{defect}_{i:03d}", image=f"test/{defect}/{PREFIX}{i:03d}.png",
                mask=f"ground_truth/{defect}/{PREFIX}{i:03d}_mask.png", defect_type=defect, label=1,
                split="train", source_split="test", width=image.shape[1], height=image.shape[0], channels=3,
            )
            atomic_write_bytes(root / entry.image, encode_png(image, 3))
            atomic_write_bytes(root / entry.mask, encode_png(mask.astype(np.uint8) * 255, 3))
            pasted.append(entry)
            records.append({"name": entry.name, "background": bg.name,
                             "instances": [[c.entry.name, c.component] for c in chosen]})
        entries = tuple(sorted((*manifest.entries, *pasted), key=lambda e: e.name))
        files = [e.image for e in entries] + [e.mask for e in entries if e.mask]
        derived = replace(manifest, dataset=final_root, fingerprint=data_fingerprint(root, files), entries=entries)
        derived.save(tmp / "split.json")
        atomic_write_json(tmp / "paste.json", {
            "config": asdict(config), "source_split": str(Path(config.split).resolve()),
            "source_fingerprint": manifest.fingerprint, "pasted": records,
        })
    log.info("pasted %d images (%s) into %s", len(pasted), counts, final_root)
    return PasteResult(dataset=final_root, split=out / "split.json", pasted=counts)

