"""``evaluate(EvalConfig) -> report dict``: every model on one split, written as a report folder.

REPORT_DIR/report.json (every number, with model, weights, config, split fingerprint and library
versions), report.md (+ figures/*.png), report.html (self-contained), per_image.csv.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from defectkit.datasets.io import read_image
from defectkit.datasets.split import load_split
from defectkit.errors import InputError
from defectkit.fileio import atomic_dir, atomic_write_bytes, atomic_write_text, check_output_dir, dumps_json
from defectkit.runtime import config_to_dict, library_versions

log = logging.getLogger(__name__)

FORMAT = "defectkit-report/1"
PER_IMAGE_COLUMNS = ("model", "image", "split", "defect_type", "label", "score", "pred", "iou", "dice")


@dataclass(frozen=True)
class EvalConfig:
    """What ``defectkit eval`` does. predictions: (name, PRED_DIR) pairs; runs: run folders searched
    for prediction_meta.json; threshold: "max-f1" | "balanced" | "good-recall=R" | "fixed=T"; bootstrap: number
    of resamples for 95% CIs (0 = none); reference: add the course study's quoted numbers."""

    split: str | Path
    labels: str | Path
    output: str | Path
    predictions: tuple[tuple[str, str | Path], ...] = ()
    runs: tuple[str | Path, ...] = ()
    threshold: str = "max-f1"
    bootstrap: int = 1000
    seed: int = 0
    reference: bool = True
    worst_cases: int = 6
    verify_split: bool = True

    def __post_init__(self) -> None:
        from defectkit.eval.thresholds import parse_threshold_rule

        try:
            parse_threshold_rule(self.threshold)
        except ValueError as exc:
            raise ValueError(
                f"--threshold {self.threshold}: {exc} (use max-f1, balanced, good-recall=R or fixed=T)"
            ) from None
        if self.bootstrap < 0:
            raise ValueError(f"--bootstrap must be >= 0, got {self.bootstrap}")
        if self.worst_cases < 0:
            raise ValueError(f"--worst must be >= 0, got {self.worst_cases}")
        if not self.predictions and not self.runs:
            raise ValueError("give at least one --pred NAME=PRED_DIR or --runs RUN_DIR")
        names = [n for n, _ in self.predictions]
        if len(set(names)) != len(names):
            raise ValueError(f"--pred: model names must be unique, got {names}")


def _load_predictions(config: EvalConfig, manifest) -> list:
    from defectkit.eval.loaders import discover_predictions, load_prediction_folder

    pairs = [(str(n), Path(p)) for n, p in config.predictions] + discover_predictions(list(config.runs))
    if not pairs:
        raise InputError(f"--runs {' '.join(map(str, config.runs))}: no prediction folders found")
    seen: set[str] = set()
    out = []
    for name, folder in pairs:
        if name in seen:
            raise InputError(f"model name {name!r} given twice (rename one: --pred OTHER_NAME={folder})")
        seen.add(name)
        out.append(load_prediction_folder(name, folder, manifest))
    return out


def _synth_record(dataset: Path) -> dict | None:
    """What ``defectkit synth`` recorded in the dataset folder (``defectkit_synth.json``), else None."""
    marker = Path(dataset) / "defectkit_synth.json"
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    return record if isinstance(record, dict) else {"generator": "defectkit.synth"}


def _split_block(path: Path, manifest) -> dict:
    return {
        "synthetic": _synth_record(manifest.dataset),
        "path": str(path.resolve()),
        "dataset": str(manifest.dataset),
        "category": manifest.category,
        "fingerprint": manifest.fingerprint,
        "seed": manifest.seed,
        "defects_to_train": manifest.defects_to_train,
        "val_fraction": manifest.val_fraction,
        "defect_types": list(manifest.defect_types),
        "counts": manifest.counts(),
    }


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def _figures(plots: list[tuple[str, dict]], manifest) -> dict[str, bytes]:
    from defectkit.eval.plots import curves_png, worst_png

    figs: dict[str, bytes] = {}
    curves = curves_png([(name, p["curves"]) for name, p in plots])
    if curves:
        figs["curves"] = curves
    for name, p in plots:
        for case in p["worst"]:
            case["image_array"] = read_image(manifest.image_path(case["entry"]))
        strip = worst_png(p["worst"])
        if strip:
            figs[f"worst:{name}"] = strip
    return figs


def _per_image_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=PER_IMAGE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r[k] is None else r[k]) for k in PER_IMAGE_COLUMNS})
    return buf.getvalue()


def write_report(report: dict, figures: dict[str, bytes], rows: list[dict], out: Path) -> None:
    """Write report.json, per_image.csv, figures/*.png, report.md and report.html into a sibling
    temp folder swapped in for ``out`` at the end: a failure, a kill or a full disk leaves the
    previous report folder whole, never a report.json of other models than report.md/html."""
    from defectkit.eval.html import render_html
    from defectkit.eval.report import render_markdown

    names = {m["name"]: i for i, m in enumerate(report["models"])}
    files: dict[str, str] = {}
    for key in figures:
        if key == "curves":
            files[key] = "figures/curves.png"
        else:  # numbered: two model names may slug to the same text
            name = key.split(":", 1)[1]
            files[key] = f"figures/worst_{names[name]:02d}_{_slug(name)}.png"
    texts = {
        "report.json": dumps_json(report),
        "per_image.csv": _per_image_csv(rows),
        "report.md": render_markdown(report, files),
        "report.html": render_html(report, figures),
    }
    with atomic_dir(out) as tmp:
        for key, rel in files.items():
            atomic_write_bytes(tmp / rel, figures[key])
        for fname, text in texts.items():
            atomic_write_text(tmp / fname, text)


def evaluate(config: EvalConfig) -> dict:
    """Evaluate every prediction folder on the test split and write the report folder.

    Returns the report dict (what report.json holds). Raises InputError for unusable inputs.
    """
    from defectkit.eval.loaders import load_coco_labels
    from defectkit.eval.model_eval import EvalContext, evaluate_model
    from defectkit.eval.report import REFERENCE
    from defectkit.eval.thresholds import parse_threshold_rule

    check_output_dir(config.output)  # a bad -o is reported before the work, not after it
    split_path = Path(config.split)
    manifest = load_split(split_path, verify=config.verify_split)
    gt = {s: load_coco_labels(config.labels, s, manifest) for s in ("test",)}
    preds = _load_predictions(config, manifest)
    ctx = EvalContext(
        manifest=manifest,
        gt=gt,
        rule=parse_threshold_rule(config.threshold),
        n_bootstrap=config.bootstrap,
        seed=config.seed,
        n_worst=config.worst_cases,
    )
    models, rows, plots = [], [], []
    for pred in preds:
        log.info("evaluating %s (%s) from %s", pred.name, pred.kind, pred.folder)
        m, r, p = evaluate_model(pred, ctx)
        models.append(m)
        rows += r
        plots.append((pred.name, p))
    report = {
        "format": FORMAT,
        "split": _split_block(split_path, manifest),
        "labels": str(Path(config.labels).resolve()),
        "config": config_to_dict(config),
        "versions": library_versions(),
        "models": models,
        "reference": REFERENCE if config.reference else None,
    }
    write_report(report, _figures(plots, manifest), rows, Path(config.output))
    return report
