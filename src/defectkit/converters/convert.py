"""``defectkit convert``: a dataset + split manifest -> LABELS/{coco,yolo,voc} (the shared layout).

All masks are read and converted before anything is written, so bad input fails with nothing
half-done; every file is then written atomically, and the same inputs give byte-identical files.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from defectkit.converters import worker, writers
from defectkit.converters.coco import SEGM_MODES, coco_categories
from defectkit.converters.instances import DEFAULT_MIN_AREA, DEFAULT_SIMPLIFY
from defectkit.converters.yolo import YOLO_TASKS, natural_name
from defectkit.datasets.split import (
    SPLIT_NAMES,
    SplitManifest,
    data_fingerprint,
    fingerprint_from_hashes,
    load_split,
)
from defectkit.errors import InputError
from defectkit.fileio import atomic_write_json, ensure_dir, mark_complete, mark_incomplete
from defectkit.progress import progress

log = logging.getLogger(__name__)

FORMATS = ("coco", "yolo", "voc")


@dataclass(frozen=True)
class ConvertConfig:
    """What ``convert_dataset`` writes.

    dataset: category folder; split: split manifest (its fingerprint is checked against dataset);
    output: LABELS folder. names: ``(("broken_large", "broken glass"), ...)`` YOLO class names.
    segm: COCO segmentation ("polygon": RLE only for holes; "rle": always RLE).
    yolo_task: "segment" (polygons; ultralytics derives boxes for detect) or "detect" (boxes).
    simplify: polygon tolerance in px (0 = exact outline). workers: processes converting masks
    (and threads writing the per-image files).
    categories: ``("all",)`` or names: the whole dataset as one set of classes ``category/defect``
    (:mod:`defectkit.converters.multi`); ``split`` may then be "" (one is made with
    ``defects_to_train`` and ``seed`` and saved as ``output/split.json``).
    """

    dataset: str
    split: str
    output: str
    formats: tuple[str, ...] = FORMATS
    segm: str = "polygon"
    min_area: int = DEFAULT_MIN_AREA
    per_image: bool = False
    single_class: bool = False
    names: tuple[tuple[str, str], ...] = ()
    link: bool = False
    check: bool = False
    yolo_task: str = "segment"
    simplify: float = DEFAULT_SIMPLIFY
    workers: int = 1
    categories: tuple[str, ...] = ()
    defects_to_train: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.split and not self.categories:
            raise ValueError("--split: required (or --categories all|A,B to split every category here)")
        if self.defects_to_train < 0:
            raise ValueError(f"--defects-to-train: must be >= 0, got {self.defects_to_train}")
        if not self.formats or len(set(self.formats)) != len(self.formats):
            raise ValueError(f"--to: give each of {FORMATS} at most once, got {list(self.formats)}")
        if bad := [f for f in self.formats if f not in FORMATS]:
            raise ValueError(f"--to: unknown format(s) {bad}; choose from {FORMATS}")
        if self.segm not in SEGM_MODES:
            raise ValueError(f"--segm: must be one of {SEGM_MODES}, got {self.segm!r}")
        if self.yolo_task not in YOLO_TASKS:
            raise ValueError(f"--yolo-task: must be one of {YOLO_TASKS}, got {self.yolo_task!r}")
        if self.min_area < 1:
            raise ValueError(f"--min-area: must be >= 1 pixel, got {self.min_area}")
        if not 0 <= self.simplify <= 10:
            raise ValueError(f"--simplify: must be in [0, 10] pixels, got {self.simplify}")
        if self.workers < 1:
            raise ValueError(f"--workers: must be >= 1, got {self.workers}")
        keys = [k for k, _ in self.names]
        if len(set(keys)) != len(keys) or any(not k or not v.strip() for k, v in self.names):
            raise ValueError(
                f'--names: give each class once as folder="natural name", got {list(self.names)}'
            )


@dataclass
class ConvertReport:
    """What was written. counts: {split: {"images", "instances"}}; fidelity only with ``check``."""

    output: Path
    files: list[Path] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    dropped_specks: int = 0
    empty_masks: int = 0
    nonbinary_masks: int = 0
    hole_instances: int = 0
    rle_annotations: int = 0
    stale_removed: int = 0
    fidelity: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "output": str(self.output),
            "counts": self.counts,
            "dropped_specks": self.dropped_specks,
            "empty_masks": self.empty_masks,
            "nonbinary_masks": self.nonbinary_masks,
            "hole_instances": self.hole_instances,
            "rle_annotations": self.rle_annotations,
            "stale_removed": self.stale_removed,
            "warnings": self.warnings,
        }

    def summary(self) -> str:
        lines = [f"{s:5s}: {c['images']} images, {c['instances']} instances" for s, c in self.counts.items()]
        lines.append(
            f"specks dropped: {self.dropped_specks}, empty defect masks: {self.empty_masks}, "
            f"instances with holes: {self.hole_instances} (COCO: RLE; YOLO: joined to the outline by a cut)"
        )
        if self.fidelity:
            rows = [("all", self.fidelity["overall"])] + list(self.fidelity["per_defect_type"].items())
            for name, f in rows:
                lines.append(
                    f"fidelity {name}: " + "; ".join(f"{k} {_iou_text(f[k])}" for k in ("coco", "yolo"))
                )
        lines.append(f"wrote {self.output}")
        return "\n".join(lines)


def _iou_text(stats: dict) -> str:
    if not stats["n"]:
        return "n/a (no instances)"
    return f"mean IoU {stats['mean_iou']:.5f}, min {stats['min_iou']:.5f} ({stats['n']} instances)"


def load_manifest(
    dataset: str | os.PathLike, split: str | os.PathLike, *, verify: bool = True
) -> SplitManifest:
    """Load ``split`` and check it against ``dataset`` (which may have moved since the split was made).

    ``verify=False`` skips the content check (``convert_dataset`` does it from the hashes its
    workers compute while reading the files anyway).
    """
    manifest = load_split(split, verify=False)
    root = Path(dataset).resolve()
    if not root.is_dir():
        raise InputError(f"{dataset}: dataset folder not found")
    absent = next((e.image for e in manifest.entries if not (root / e.image).is_file()), None)
    if absent is not None:  # most often the wrong folder (a root for a category's manifest): say which
        raise InputError(f"{split}: lists {absent}, which is not in {root} (the manifest was made for "
                         f"{manifest.dataset}: give that folder as DATASET, or split this one)")
    if verify:
        files = [e.image for e in manifest.entries] + [e.mask for e in manifest.entries if e.mask]
        _check_fingerprint(manifest, split, root, data_fingerprint(root, files))
    return replace(manifest, dataset=root)


def _check_fingerprint(
    manifest: SplitManifest, split: str | os.PathLike, root: Path, fingerprint: str
) -> None:
    if fingerprint != manifest.fingerprint:
        raise InputError(
            f"{split}: fingerprint does not match the data in {root} "
            "(a different dataset, or files changed since the split was made)"
        )


def _class_names(cfg: ConvertConfig, categories: list[dict]) -> dict[int, str]:
    given = dict(cfg.names)
    known = {c["name"] for c in categories}
    if unknown := sorted(set(given) - known):
        raise InputError(f"--names: unknown class(es) {unknown}; classes are {sorted(known)}")
    return {c["id"] - 1: given.get(c["name"], natural_name(c["name"])) for c in categories}


def _convert_masks(cfg: ConvertConfig, manifest: SplitManifest) -> list[worker.ImageResult]:
    jobs = [
        worker.Job(
            e.name,
            str(manifest.image_path(e)),
            str(manifest.mask_path(e)) if e.mask else None,
            e.width,
            e.height,
            e.label,
            cfg.min_area,
            cfg.per_image,
            cfg.simplify,
            cfg.check,
        )
        for e in manifest.entries
    ]
    if cfg.workers > 1 and len(jobs) > 1:
        return _run_pool(jobs, cfg.workers)
    return [worker.process(j) for j in progress(jobs, desc="convert", total=len(jobs))]


def _run_pool(jobs: list[worker.Job], workers: int) -> list[worker.ImageResult]:
    """``worker.process`` over ``jobs`` with ``workers - 1`` child processes plus this one.

    Children take chunks from the front of the queue; this process takes chunks from the back
    (cancelling each before a child has started it) instead of waiting, so every core works and
    one process start is saved, which matters on a few hundred masks.
    """
    import cv2  # noqa: F401  # imported once here, before the fork, instead of in every child
    from pycocotools import mask  # noqa: F401

    from defectkit.converters.png import inflater

    inflater()
    size = max(1, min(8, len(jobs) // (8 * workers)))
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    done: list[list[worker.ImageResult] | None] = [None] * len(chunks)
    ticks = iter(progress(range(len(jobs)), desc="convert", total=len(jobs)))
    pool = ProcessPoolExecutor(
        max_workers=workers - 1, initializer=worker.die_with_parent, initargs=(os.getpid(),)
    )
    futures = [pool.submit(worker.process_many, c) for c in chunks]
    try:
        for k in reversed(range(len(chunks))):  # this process works from the back ...
            if futures[k].cancel():
                done[k] = worker.process_many(chunks[k])
                for _ in chunks[k]:
                    next(ticks, None)
        for k, fut in enumerate(futures):  # ... and takes what the children did from the front
            if done[k] is None:
                done[k] = fut.result()
                for _ in chunks[k]:
                    next(ticks, None)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=False)  # every result is in: the children exit while this process writes
    return [r for chunk in done for r in chunk]  # type: ignore[union-attr]


def convert_dataset(config: ConvertConfig) -> ConvertReport:
    """Convert every image of the split manifest into the requested formats under ``config.output``."""
    cfg = config
    out = Path(cfg.output).resolve()
    if cfg.categories:
        from defectkit.converters.multi import whole_dataset_split

        dataset, split = whole_dataset_split(
            cfg.dataset, cfg.split, cfg.categories, out, cfg.defects_to_train, cfg.seed
        )
        cfg = replace(cfg, dataset=dataset, split=split)
    manifest = load_manifest(cfg.dataset, cfg.split, verify=False)
    # the dataset's top folders that hold listed files (train, test, ground_truth; a category folder)
    tops = {Path(f).parts[0] for e in manifest.entries for f in (e.image, e.mask) if f}
    inside = manifest.dataset in out.parents and out.parts[len(manifest.dataset.parts)] in tops
    if out == manifest.dataset or inside:
        raise InputError(f"{cfg.output}: output folder must not be inside the dataset's data folders")
    categories = coco_categories(manifest.defect_types, single_class=cfg.single_class)
    names = _class_names(cfg, categories) if "yolo" in cfg.formats else {}
    ensure_dir(out)
    results = _convert_masks(cfg, manifest)
    hashes = {e.image: r.image_sha for e, r in zip(manifest.entries, results, strict=True)}
    hashes.update({e.mask: r.mask_sha for e, r in zip(manifest.entries, results, strict=True) if e.mask})
    _check_fingerprint(manifest, cfg.split, manifest.dataset, fingerprint_from_hashes(hashes))
    report = ConvertReport(output=out)
    _tally(report, manifest, results, cfg)
    if cfg.categories and report.counts["train"]["instances"] == 0:
        report.warnings.append(
            "the train split holds no defect instance (a detector trained on it learns nothing): "
            "use --defects-to-train K to move K test images of each defect type to train"
        )
        log.warning(report.warnings[-1])
    plan = writers.Plan(manifest, results, categories, single_class=cfg.single_class, threads=cfg.workers)
    mark_incomplete(out, "defectkit convert")  # removed last: readers refuse a half-updated folder
    _write_formats(plan, out, cfg, names, report)
    if cfg.check:
        from defectkit.converters.fidelity import summarize

        report.fidelity = summarize(manifest.entries, results, report)
        report.files.append(atomic_write_json(out / "check.json", report.fidelity))
    from defectkit.runtime import config_to_dict, library_versions

    report.files.append(
        atomic_write_json(
            out / "convert_config.json",
            {
                # workers is left out: it changes speed, never output, and the file must not change with it
                "config": {k: v for k, v in config_to_dict(cfg).items() if k != "workers"},
                "dataset": str(manifest.dataset),
                "split_fingerprint": manifest.fingerprint,
                "categories": categories,
                "yolo_names": {str(k): v for k, v in names.items()},
                "report": report.to_dict(),
                "versions": library_versions(),
            },
        )
    )
    mark_complete(out)
    return report


def _write_formats(
    plan: writers.Plan, out: Path, cfg: ConvertConfig, names: dict[int, str], report: ConvertReport
) -> None:
    """COCO, YOLO and VOC files; with ``workers > 1`` the COCO json (encoding, fsync) is written on a
    thread while YOLO and VOC create their per-image files."""
    coco, background = None, None
    if "coco" in cfg.formats:
        write = partial(writers.write_coco, plan, out / "coco", segm=cfg.segm)
        if cfg.workers > 1 and ("yolo" in cfg.formats or "voc" in cfg.formats):
            background = ThreadPoolExecutor(max_workers=1)
            coco = background.submit(write)
        else:
            coco = write()
    try:
        if "yolo" in cfg.formats:
            writers.write_yolo(plan, out / "yolo", names, link=cfg.link, task=cfg.yolo_task, report=report)
        if "voc" in cfg.formats:
            writers.write_voc(plan, out / "voc", report=report)
    finally:
        if background is not None:
            background.shutdown(wait=True)
    if coco is not None:
        files, report.rle_annotations = coco.result() if background is not None else coco
        report.files[:0] = files  # COCO first, as when written one after the other


def _tally(report: ConvertReport, manifest: SplitManifest, results: list, cfg: ConvertConfig) -> None:
    for s in SPLIT_NAMES:
        pairs = [(e, r) for e, r in zip(manifest.entries, results, strict=True) if e.split == s]
        report.counts[s] = {"images": len(pairs), "instances": sum(len(r.instances) for _, r in pairs)}
    report.dropped_specks = sum(r.dropped for r in results)
    report.nonbinary_masks = sum(r.nonbinary for r in results)
    report.hole_instances = sum(i.has_holes for r in results for i in r.instances)
    empty = [e for e, r in zip(manifest.entries, results, strict=True) if e.label == 1 and not r.instances]
    report.empty_masks = len(empty)
    if empty:
        report.warnings.append(
            f"{len(empty)} defect image(s) have no instance left (empty mask or only specks "
            f"< {cfg.min_area} px), e.g. {manifest.mask_path(empty[0])}; written without boxes"
        )
    if report.nonbinary_masks:
        report.warnings.append(f"{report.nonbinary_masks} mask(s) are not binary 0/255; thresholded at >127")
    if report.dropped_specks:
        report.warnings.append(f"{report.dropped_specks} speck(s) smaller than {cfg.min_area} px dropped")
    for w in report.warnings:
        log.warning(w)
