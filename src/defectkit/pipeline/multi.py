"""``defectkit run`` over several categories: ``dataset:`` an MVTec root with ``categories: all`` or a list.

Each category runs the single-category chain (:func:`defectkit.pipeline.run.run_pipeline`) into
``output/<category>/`` (its own split, labels, runs, report and up-to-date stamps), one after the
other in sorted order. A category whose stage raises is logged with the category and the stage,
recorded as failed, and the next category goes on. Then ``output/report/report.{json,md,html}``
holds the category x model table (:mod:`defectkit.eval.summary`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from defectkit.errors import InputError

if TYPE_CHECKING:
    from defectkit.pipeline.chain import PipelineConfig
    from defectkit.pipeline.stages import StageResult

log = logging.getLogger(__name__)

#: the folder of the cross-category report under ``output``: no category may have this name
SUMMARY_DIR = "report"


def check_categories_field(cfg: PipelineConfig) -> None:
    """ValueError for a ``categories`` value that cannot be right whatever the dataset holds."""
    value = cfg.categories
    if cfg.synth is not None:
        raise ValueError("categories: needs `dataset:` an MVTec root; a synth section makes one category")
    if isinstance(value, str):
        if value != "all":
            raise ValueError(f"categories: expected `all` or a list of category names, got {value!r}")
        return
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"categories: expected `all` or a non-empty list of category names, got {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"categories: a name is listed twice in {list(value)}")
    bad = [v for v in value if "/" in v or "\\" in v or v in (".", "..", SUMMARY_DIR)]
    if bad:
        raise ValueError(f"categories: {bad} cannot be category folder names here")


def root_categories(root: Path) -> tuple[str, ...]:
    """Sorted names of the categories of ``root`` (MVTec AD / MVTec AD 2: the folders directly under
    it with ``train/`` or ``test/``; VisA: the objects its ``split_csv/1cls.csv`` lists, so an object
    whose folder is missing fails as a category instead of silently dropping out)."""
    from defectkit.datasets.visa import visa_objects

    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    if (root / "train").is_dir() or (root / "test").is_dir() or (root / "Data").is_dir():
        raise InputError(f"{root}: is one category folder; with `categories:` give the dataset root that holds "
                         "the category folders (or drop `categories:` to run this category alone)")
    if (root / "split_csv").is_dir():
        names = visa_objects(root)
    else:
        names = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and (
            (p / "train").is_dir() or (p / "test").is_dir())))
    if not names:
        raise InputError(f"{root}: no category folder (with train/ or test/, or a VisA object with Data/) here")
    return names


def check_one_category(cfg: PipelineConfig) -> None:
    """InputError before any stage when a run without ``categories:`` is given a root that holds
    several categories (``split`` would stop with a message about CLI flags half-way through)."""
    if cfg.synth is not None or not cfg.data_dir.is_dir():
        return
    try:
        names = root_categories(cfg.data_dir)
    except InputError:  # a category folder, or no category here: the stages say what is wrong
        return
    if len(names) > 1:
        raise InputError(f"dataset: {cfg.data_dir} holds {len(names)} categories ({', '.join(names)}); add "
                         "`categories: all` (or a list of names) to run each of them, or give one category "
                         "folder as `dataset:`")


def resolve_categories(cfg: PipelineConfig) -> tuple[str, ...]:
    """The categories to run, in sorted order; one InputError naming every unknown name and the
    available ones."""
    available = root_categories(cfg.data_dir)
    if cfg.categories == "all":
        if SUMMARY_DIR in available:
            raise InputError(f"{cfg.data_dir / SUMMARY_DIR}: a category named {SUMMARY_DIR!r} would share "
                             f"output/{SUMMARY_DIR}/ with the cross-category report; rename it or list the others")
        return available
    unknown = [c for c in cfg.categories if c not in available]  # type: ignore[union-attr]
    if unknown:
        raise InputError(f"categories: {unknown} not in {cfg.data_dir} (available: {', '.join(available)})")
    return tuple(sorted(cfg.categories))  # type: ignore[arg-type]


def category_config(cfg: PipelineConfig, category: str) -> PipelineConfig:
    """The single-category chain of ``category``: its folder under the root, its output under ``output``."""
    return dataclasses.replace(cfg, dataset=str(cfg.data_dir / category), output=str(cfg.out / category),
                               categories=None)


@dataclass
class CategoryRun:
    """How one category's chain went. status: "ok" | "failed"; stage / error: where and why it failed."""

    category: str
    status: str
    stages: list[StageResult] = field(default_factory=list)
    stage: str | None = None
    error: str | None = None


def _check_up_front(cfg: PipelineConfig, first: str, from_stage: str | None, only: str | None) -> None:
    """Flags, devices and weights files are the same for every category: checked once, before any runs."""
    from defectkit.pipeline.run import build_stages
    from defectkit.pipeline.stages import check_stages

    stages = build_stages(category_config(cfg, first))
    names = [s.name for s in stages]
    for flag, value in (("--from", from_stage), ("--only", only)):
        if value is not None and value not in names:
            raise InputError(f"{flag} {value}: unknown stage (stages: {', '.join(names)})")
    check_stages([s for s in stages if only is None or s.name == only])


def _run_one(cfg: PipelineConfig, category: str, from_stage: str | None, only: str | None) -> CategoryRun:
    from defectkit.pipeline.run import run_pipeline

    current: list[str] = []
    try:
        results = run_pipeline(category_config(cfg, category), from_stage=from_stage, only=only,
                               on_stage=current.append)
    except Exception as exc:  # noqa: BLE001 - one category's failure must not stop the others
        stage = current[-1] if current else None
        message = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        log.error("category %s: stage %s failed: %s", category, stage or "(before the first stage)", message)
        log.debug("category %s: traceback", category, exc_info=True)
        return CategoryRun(category, "failed", stage=stage, error=message)
    return CategoryRun(category, "ok", results)


def _outcome(cfg: PipelineConfig, run: CategoryRun) -> dict[str, Any]:
    from defectkit.fileio import read_json

    outcome: dict[str, Any] = {"category": run.category, "status": run.status, "stage": run.stage,
                               "error": run.error}
    path = cfg.out / run.category / "report" / "report.json"
    if run.status == "ok":
        if path.is_file():
            outcome["report"] = read_json(path, "report")
        else:  # e.g. --only STAGE before eval ever ran
            outcome["status"] = "missing"
    return outcome


def summary_dir(cfg: PipelineConfig) -> Path:
    return cfg.out / SUMMARY_DIR


def run_categories(cfg: PipelineConfig, *, from_stage: str | None = None,
                   only: str | None = None) -> tuple[list[CategoryRun], dict[str, Any]]:
    """Run every selected category's chain, then write the cross-category report.

    Returns (one :class:`CategoryRun` per category, the table dict written to
    ``output/report/report.json``). Bad settings, an unknown category, a missing weights file or an
    unavailable device raise InputError before any category runs.
    """
    from defectkit.eval.summary import summary_table, write_summary

    categories = resolve_categories(cfg)
    _check_up_front(cfg, categories[0], from_stage, only)
    runs = []
    for i, category in enumerate(categories, 1):
        log.info("category %s (%d of %d)", category, i, len(categories))
        runs.append(_run_one(cfg, category, from_stage, only))
    table = summary_table([_outcome(cfg, r) for r in runs])
    table["dataset"] = str(cfg.data_dir)
    table["stages"] = {r.category: [{"name": s.name, "status": s.status, "seconds": round(s.seconds, 1)}
                                    for s in r.stages] for r in runs}
    write_summary(summary_dir(cfg), table)
    failed = [r.category for r in runs if r.status == "failed"]
    if failed:
        log.error("%d of %d categories failed: %s", len(failed), len(runs), ", ".join(failed))
    return runs, table
