"""The cross-category report of a multi-category run: a category x model table per key number.

:func:`summary_table` is a pure function from the per-category outcomes (each category's
report.json dict, or how it failed) to the table dict that ``output/report/report.json`` holds;
:func:`summary_markdown` / :func:`summary_html` render it and :func:`write_summary` writes the three
files atomically. Conventions as in the per-category report: a number a model does not produce (box
mAP50 of a classifier) or that is undefined is ``None`` in JSON and "N/A" in text; a category whose
chain failed shows "failed" in every cell.

Table dict layout::

    {"metrics": [{"key": "image_auroc", "label": "Image AUROC"}, ...],
     "models": ["ResNet", "AutoEncoder"],                  # first-seen order over the categories
     "categories": [{"category": "bottle", "status": "ok" | "failed" | "missing",
                     "stage": None | "classifier_train", "error": None | "...",
                     "values": {model: {metric key: float | None}}}, ...],
     "mean": {"n_ok": 2, "n_categories": 3,
              "values": {model: {metric key: {"mean": float | None, "n": int}}}}}

``mean`` averages each cell over the categories with status "ok" that have a number there; ``n`` is
how many did (a cell with n = 0 has mean None).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from defectkit.eval.report import NA, fmt, md_table

#: (key, label) of the numbers compared across categories, in column order
SUMMARY_METRICS: tuple[tuple[str, str], ...] = (
    ("image_auroc", "Image AUROC"),
    ("accuracy", "Accuracy"),
    ("defect_f1", "Defect F1"),
    ("box_map50", "Box mAP50"),
    ("mask_iou", "Mask IoU"),
)
FAILED = "failed"
MISSING = "no report"


def model_numbers(model: Mapping[str, Any]) -> dict[str, float | None]:
    """The key numbers of one ``report["models"][i]`` entry; None where the model has no such output."""
    image = model.get("image") or {}
    return {
        "image_auroc": image.get("auroc"),
        "accuracy": image.get("accuracy"),
        "defect_f1": image.get("f1"),
        "box_map50": (model.get("box") or {}).get("AP50"),
        "mask_iou": (model.get("mask") or {}).get("iou"),
    }


def summary_table(outcomes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The cross-category table from one outcome per category, in the given order.

    outcome: ``{"category": str, "status": "ok" | "failed" | "missing", "report": report.json dict
    (status ok), "stage": failing stage name or None, "error": message or None}``.
    """
    models: list[str] = []
    rows = []
    for o in outcomes:
        report = o.get("report") if o["status"] == "ok" else None
        values: dict[str, dict[str, float | None]] = {}
        for m in (report or {}).get("models", []):
            values[m["name"]] = model_numbers(m)
            if m["name"] not in models:
                models.append(m["name"])
        rows.append({"category": o["category"], "status": o["status"], "stage": o.get("stage"),
                     "error": o.get("error"), "values": values})
    ok = [r for r in rows if r["status"] == "ok"]
    mean: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for name in models:
        mean[name] = {}
        for key, _ in SUMMARY_METRICS:
            nums = [float(v) for r in ok if (v := r["values"].get(name, {}).get(key)) is not None]
            mean[name][key] = {"mean": sum(nums) / len(nums) if nums else None, "n": len(nums)}
    return {
        "metrics": [{"key": k, "label": label} for k, label in SUMMARY_METRICS],
        "models": models,
        "categories": rows,
        "mean": {"n_ok": len(ok), "n_categories": len(rows), "values": mean},
    }


def _cell(row: Mapping[str, Any], model: str, key: str) -> str:
    if row["status"] == "failed":
        return FAILED
    if row["status"] != "ok":
        return MISSING
    return fmt(row["values"].get(model, {}).get(key))


def metric_rows(table: Mapping[str, Any], key: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of one metric: a row per category, then the mean row; a column per model."""
    header = ["Category", *table["models"]]
    rows = [[r["category"], *(_cell(r, m, key) for m in table["models"])] for r in table["categories"]]
    mean = table["mean"]
    n_ok = mean["n_ok"]
    cells = []
    for m in table["models"]:
        c = mean["values"][m][key]
        text = NA if c["mean"] is None else fmt(c["mean"])
        cells.append(text + (f" (n={c['n']})" if c["mean"] is not None and c["n"] != n_ok else ""))
    rows.append([f"mean ({n_ok} of {mean['n_categories']} categories)", *cells])
    return header, rows


def failure_rows(table: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): every category that did not finish, with its failing stage and error."""
    rows = [[r["category"], r["status"], r["stage"] or NA, r["error"] or ""]
            for r in table["categories"] if r["status"] != "ok"]
    return ["Category", "Status", "Stage", "Error"], rows


def _intro(table: Mapping[str, Any]) -> list[str]:
    mean = table["mean"]
    return [
        f"- {mean['n_categories']} categories, {mean['n_ok']} finished; each has its own report in "
        "`<category>/report/`",
        "- mean: over the finished categories that have the number (n=k when fewer)",
        "- `N/A`: the model does not produce this number, or it is undefined; `failed`: the category's "
        "chain stopped at a stage (see Failures)",
    ]


def summary_markdown(table: Mapping[str, Any]) -> str:
    """report.md of the cross-category report."""
    lines = ["# Defect inspection report: all categories", "", *_intro(table), ""]
    linked = {r["category"] for r in table["categories"] if r["status"] == "ok"}
    for key, label in ((m["key"], m["label"]) for m in table["metrics"]):
        header, rows = metric_rows(table, key)
        rows = [[f"[{r[0]}](../{r[0]}/report/report.md)" if r[0] in linked else r[0], *r[1:]] for r in rows]
        lines += [f"## {label} (test split)", "", md_table(header, rows)]
    header, rows = failure_rows(table)
    if rows:
        lines += ["## Failures", "", md_table(header, rows)]
    return "\n".join(lines)


def summary_html(table: Mapping[str, Any]) -> str:
    """report.html of the cross-category report: one self-contained file."""
    from defectkit.eval.html import CSS, html_table

    parts = ["<h1>Defect inspection report: all categories</h1><ul>"]
    parts += [f"<li>{escape(x[2:]).replace('`', '')}</li>" for x in _intro(table)]
    links = [f'<a href="../{escape(r["category"])}/report/report.html">{escape(r["category"])}</a>'
             for r in table["categories"] if r["status"] == "ok"]
    parts.append(f"<li>per-category reports: {', '.join(links) or 'none'}</li></ul>")
    for m in table["metrics"]:
        parts += [f"<h2>{escape(m['label'])} (test split)</h2>", html_table(*metric_rows(table, m["key"]))]
    header, rows = failure_rows(table)
    if rows:
        parts += ["<h2>Failures</h2>", html_table(header, rows)]
    body = "".join(parts)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>All categories</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def format_summary(table: Mapping[str, Any]) -> str:
    """The metrics that hold at least one number, as aligned plain-text tables (for the terminal)."""
    out = []
    for m in table["metrics"]:
        header, rows = metric_rows(table, m["key"])
        if all(c in (NA, FAILED, MISSING) for r in rows[:-1] for c in r[1:]):
            continue
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
        out.append(m["label"])
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (header, *rows)]
        out.append("")
    return "\n".join(out)


def write_summary(out_dir: str | os.PathLike, table: Mapping[str, Any]) -> Path:
    """Write report.json, report.md and report.html into ``out_dir`` (atomically); returns it."""
    from defectkit.fileio import atomic_write_json, atomic_write_text, ensure_dir

    out = ensure_dir(out_dir)
    atomic_write_json(out / "report.json", table)
    atomic_write_text(out / "report.md", summary_markdown(table))
    atomic_write_text(out / "report.html", summary_html(table))
    return out
