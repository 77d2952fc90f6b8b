"""Writing the LABELS folder (COCO json, YOLO folder, VOC XML) from converted instances.

Index files (COCO json, data.yaml, image sets) are written with ``defectkit.fileio`` (temp file,
fsync, rename). The thousands of per-image files use ``write_small``: temp file + rename without
fsync (one fsync each cost ~8 ms here and dominated the run; the files are reproducible from the
inputs), and an identical existing file is left untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from defectkit.converters.coco import build_coco, instances_to_coco_annotations
from defectkit.converters.voc import voc_xml
from defectkit.converters.yolo import data_yaml, instances_to_yolo_lines
from defectkit.datasets.split import SPLIT_NAMES, SplitEntry, SplitManifest
from defectkit.fileio import atomic_write_json, atomic_write_text, ensure_dir, raise_output_error
from defectkit.predictions import image_ids
from defectkit.progress import progress


@dataclass
class Plan:
    """Converted results aligned with ``manifest.entries``; ids and classes as the contract says:
    image id = 1 + position in the manifest; category ids 1..n in ``categories`` order."""

    manifest: SplitManifest
    results: list[Any]
    categories: list[dict]
    single_class: bool = False
    threads: int = 1  # for the per-image files (see ``run_writes``)
    ids: dict[str, int] = field(init=False)
    by_split: dict[str, list[tuple[SplitEntry, Any]]] = field(init=False)

    def __post_init__(self) -> None:
        pairs = list(zip(self.manifest.entries, self.results, strict=True))
        self.ids = image_ids(self.manifest.entries)
        self.by_split = {s: [(e, r) for e, r in pairs if e.split == s] for s in SPLIT_NAMES}
        self._cat = {c["name"]: c["id"] for c in self.categories}

    def category_id(self, entry: SplitEntry) -> int:
        """The entry's COCO category id (0 for good images, which have no instances)."""
        return 1 if self.single_class else self._cat.get(entry.defect_type, 0)


def write_small(path: Path, data: bytes) -> None:
    """Atomic write without fsync (see the module docstring); identical files are left alone."""
    if (
        not path.is_symlink()
        and path.is_file()
        and path.stat().st_size == len(data)
        and path.read_bytes() == data
    ):
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp.exists():
            tmp.unlink()
        raise_output_error(exc, path)
        raise


def place_image(src: Path, dst: Path, link: bool) -> None:
    """Copy (or symlink with ``link``) atomically; an up-to-date destination is left alone."""
    if not link:
        write_small(dst, src.read_bytes())
        return
    if dst.is_symlink() and os.readlink(dst) == str(src):
        return
    if not dst.exists() and not dst.is_symlink():
        os.symlink(src, dst)  # creating a link is atomic by itself
        return
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(src, tmp)
    os.replace(tmp, dst)


def run_writes(writes: list[Callable[[], None]], threads: int) -> None:
    """Run independent per-image writes, split over ``threads`` threads.

    Creating a file costs ~0.1 ms of kernel time here, mostly without the GIL, so threads overlap
    it (the converter passes its ``--workers``); each thread takes one contiguous share.
    """
    if threads <= 1 or len(writes) < 2 * threads:
        _run_share(writes)
        return
    from concurrent.futures import ThreadPoolExecutor

    size = -(-len(writes) // threads)
    shares = [writes[i : i + size] for i in range(0, len(writes), size)]
    with ThreadPoolExecutor(max_workers=len(shares)) as pool:
        list(pool.map(_run_share, shares))  # re-raises the first error


def _run_share(writes: list[Callable[[], None]]) -> None:
    for write in writes:
        write()


def remove_stale(folder: Path, keep: set[str]) -> int:
    """Delete files in ``folder`` (ours) that this run did not write, so a changed split cannot leak."""
    n = 0
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.name not in keep and (p.is_file() or p.is_symlink()):
                p.unlink()
                n += 1
    return n


def write_coco(plan: Plan, root: Path, *, segm: str) -> tuple[list[Path], int]:
    """``root/{train,val,test}.json``: every image of the split, annotations numbered 1..N per file.

    Returns (files written, annotations written as RLE); it touches nothing else, so it can run on
    a thread next to the YOLO and VOC writers.
    """
    m = plan.manifest
    files, rle_annotations = [], 0
    for split, pairs in plan.by_split.items():
        images, anns = [], []
        for e, r in pairs:
            image_id = plan.ids[e.name]
            images.append(
                {
                    "id": image_id,
                    "file_name": e.image,
                    "width": e.width,
                    "height": e.height,
                    "name": e.name,
                    "defect_type": e.defect_type,
                    "label": e.label,
                    "split": e.split,
                }
            )
            anns += instances_to_coco_annotations(
                r.instances,
                image_id=image_id,
                category_id=plan.category_id(e),
                first_id=len(anns) + 1,
                segm=segm,
            )
        rle_annotations += sum(isinstance(a["segmentation"], dict) for a in anns)
        info = {
            "dataset": str(m.dataset),
            "category": m.category,
            "split": split,
            "split_fingerprint": m.fingerprint,
        }
        coco = build_coco(images, anns, plan.categories, info=info)
        files.append(atomic_write_json(root / f"{split}.json", coco, indent=None))
    return files, rle_annotations


def write_yolo(plan: Plan, root: Path, names: dict[int, str], *, link: bool, task: str, report) -> None:
    """``root/images/<split>/<name><ext>``, ``root/labels/<split>/<name>.txt`` and ``root/data.yaml``."""
    for split, pairs in plan.by_split.items():
        img_dir, lab_dir = ensure_dir(root / "images" / split), ensure_dir(root / "labels" / split)
        keep_img, keep_lab = set(), set()
        writes: list[Callable[[], None]] = []
        for e, r in progress(pairs, desc=f"yolo {split}"):
            src = plan.manifest.image_path(e)
            img_name, lab_name = e.name + src.suffix, e.name + ".txt"  # original extension
            lines = instances_to_yolo_lines(
                r.instances, plan.category_id(e) - 1, e.width, e.height, task=task
            )
            text = "".join(line + "\n" for line in lines).encode()
            writes += [
                partial(place_image, src, img_dir / img_name, link),
                partial(write_small, lab_dir / lab_name, text),
            ]
            keep_img.add(img_name)
            keep_lab.add(lab_name)
        run_writes(writes, plan.threads)
        report.stale_removed += remove_stale(img_dir, keep_img) + remove_stale(lab_dir, keep_lab)
    report.files.append(atomic_write_text(root / "data.yaml", data_yaml(str(root), names)))


def write_voc(plan: Plan, root: Path, *, report) -> None:
    """``root/Annotations/<name>.xml``, ``root/ImageSets/Main/<split>.txt``, ``root/labels.txt``."""
    name_of = {c["id"]: c["name"] for c in plan.categories}
    ann_dir = ensure_dir(root / "Annotations")
    keep = set()
    writes: list[Callable[[], None]] = []
    for split, pairs in plan.by_split.items():
        for e, r in pairs:
            cls = name_of.get(plan.category_id(e), "")
            xml = voc_xml(
                filename=Path(e.image).name,
                path=str(plan.manifest.image_path(e)),
                width=e.width,
                height=e.height,
                depth=e.channels,
                folder=str(Path(e.image).parent),
                objects=[(cls, i.bbox_xyxy) for i in r.instances],
            )
            writes.append(partial(write_small, ann_dir / f"{e.name}.xml", xml.encode()))
            keep.add(f"{e.name}.xml")
        lines = "".join(e.name + "\n" for e, _ in pairs)
        report.files.append(atomic_write_text(root / "ImageSets" / "Main" / f"{split}.txt", lines))
    run_writes(writes, plan.threads)
    report.stale_removed += remove_stale(ann_dir, keep)
    report.files.append(
        atomic_write_text(root / "labels.txt", "".join(c["name"] + "\n" for c in plan.categories))
    )
