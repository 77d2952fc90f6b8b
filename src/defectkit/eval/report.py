"""The comparison report as text: the homework-style table, per-defect-type tables, Markdown.

Conventions: a kind of output a model does not produce is shown as "–" (en dash); a number
that is undefined (None in report.json, e.g. COCOeval's -1 buckets) is shown as "N/A".
Floats are shown with 3 decimals, everywhere the same (``fmt``).
"""

from __future__ import annotations

from collections.abc import Iterator

DASH = "–"
NA = "N/A"
TABLE_COLUMNS = (
    "Model",
    "Type",
    "Accuracy",
    "Good recall",
    "Defect recall",
    "Defect F1",
    "AUROC",
    "Box mAP50",
    "mAP50-95",
    "Mask IoU",
    "Notes",
)

#: The course study's published numbers on MVTec AD bottle (not computed here).
REFERENCE = {
    "source": "course study (homework) on MVTec AD bottle; quoted, not computed by this run",
    "rows": [
        {"model": "AutoEncoder", "accuracy": 0.43, "f1": 0.42},
        {"model": "ResNet + weighted CE + dropout + weight decay", "accuracy": 0.91, "f1": 0.93},
    ],
}


def fmt(value: object) -> str:
    """One number as shown in every report: None -> N/A, int as is, float with 3 decimals."""
    if value is None:
        return NA
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _get(block: dict | None, key: str) -> str:
    return DASH if block is None else fmt(block.get(key))


def notes_text(m: dict) -> str:
    thr = m["threshold"]
    notes = [f"thr {fmt(thr['value'])} ({thr['rule']}{' on val' if thr['chosen_on'] == 'val' else ''})"]
    if thr.get("note"):
        notes.append(thr["note"])
    if m.get("note"):  # from prediction_meta.json, e.g. how the text embeddings were made
        notes.append(m["note"])
    if m["score_source"] != "image_scores.csv":
        notes.append("image score = max box score")
    if m.get("mask_coco"):
        notes.append(f"mask mAP50 {fmt(m['mask_coco'].get('AP50'))}")
    if m.get("pixel"):
        notes.append(f"pixel AUROC {fmt(m['pixel']['auroc'])}, AUPRO {fmt(m['pixel']['aupro'])}")
    return "; ".join(notes)


def table_rows(report: dict) -> list[list[str]]:
    """The homework-style table: one row of strings per model, columns TABLE_COLUMNS."""
    rows = []
    for m in report["models"]:
        im = m["image"]
        rows.append(
            [
                m["name"],
                m["kind"],
                fmt(im["accuracy"]),
                fmt(im["good_recall"]),
                fmt(im["defect_recall"]),
                fmt(im["f1"]),
                fmt(im["auroc"]),
                _get(m["box"], "AP50"),
                _get(m["box"], "AP"),
                _get(m["mask"], "iou"),
                notes_text(m),
            ]
        )
    return rows


def format_table(report: dict) -> str:
    """The homework-style table as aligned plain text (for the terminal / the demo)."""
    rows = [list(TABLE_COLUMNS), *table_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_COLUMNS) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 5)
    return "\n".join(lines) + "\n"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in [header, *rows]]
    out = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(out) + "\n"


PER_TYPE_COLUMNS = (
    ("n", "Images"),
    ("recall", "Image recall"),
    ("iou", "Mask IoU"),
    ("dice", "Dice"),
    ("instance_recall", "Instance recall @0.5"),
    ("box_AP50", "Box AP50"),
    ("box_AP", "Box AP"),
)


def per_type_tables(report: dict) -> dict[str, tuple[list[str], list[list[str]]]]:
    """{defect type: (header, rows)}: one row per model; "–" where a model has no such output."""
    types = sorted({t for m in report["models"] for t in m["per_type"]})
    out = {}
    for t in types:
        header = ["Model", *(label for _, label in PER_TYPE_COLUMNS)]
        rows = []
        for m in report["models"]:
            row = m["per_type"].get(t, {})
            rows.append([m["name"], *(fmt(row[k]) if k in row else DASH for k, _ in PER_TYPE_COLUMNS)])
        out[t] = (header, rows)
    return out


IMAGE_LABELS = {
    "accuracy": "accuracy",
    "good_recall": "good recall",
    "defect_recall": "defect recall",
    "precision": "defect precision",
    "f1": "defect F1",
    "auroc": "image AUROC",
    "ap": "image AP",
}


def detail_rows(m: dict) -> list[list[str]]:
    """Headline numbers of one model with their bootstrap 95% CI: [metric, value, CI]."""
    rows = []
    ci = m["image"].get("ci", {})
    for k, label in IMAGE_LABELS.items():
        rows.append([label, fmt(m["image"][k]), _ci(ci.get(k)) if ci else DASH])
    for block, label in (("box", "box"), ("mask_coco", "mask")):
        if m.get(block):
            bci = m[block].get("ci", {})
            for k in ("AP", "AP50", "AP75", "AR100"):
                rows.append([f"{label} {k}", fmt(m[block][k]), _ci(bci.get(k)) if k in bci else DASH])
    if m.get("mask"):
        for k, label in (
            ("iou", "mask IoU (defect images)"),
            ("dice", "mask Dice (defect images)"),
            ("instance_recall", "instance recall @ IoU 0.5"),
            ("good_with_mask", "good images with a mask"),
        ):
            if k in m["mask"]:
                rows.append([label, fmt(m["mask"][k]), DASH])
    if m.get("pixel"):
        rows += [
            ["pixel AUROC", fmt(m["pixel"]["auroc"]), DASH],
            ["AUPRO (FPR <= 0.3)", fmt(m["pixel"]["aupro"]), DASH],
        ]
    return rows


def _ci(interval: list[float] | None) -> str:
    return NA if interval is None else f"[{fmt(interval[0])}, {fmt(interval[1])}]"


def flatten(obj: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted path, leaf) for every scalar leaf of a JSON-like object, in document order."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def all_numbers(report: dict) -> list[list[str]]:
    """Every computed number and label of report.json as [path, value] rows (the report's appendix)."""
    skip = ("versions.", "reference.")  # strings, and the quoted reference shown above as published
    return [[path, fmt(v)] for path, v in flatten(report) if not path.startswith(skip)]


def confusion_rows(m: dict) -> tuple[list[str], list[list[str]]]:
    """The test confusion matrix [[TN, FP], [FN, TP]] as a labelled 2x2 table."""
    if m["image"]["confusion"] is None:  # no usable threshold
        return ["true \\ predicted", "good", "defect"], [["good", NA, NA], ["defect", NA, NA]]
    (tn, fp), (fn, tp) = m["image"]["confusion"]
    return ["true \\ predicted", "good", "defect"], [["good", str(tn), str(fp)], ["defect", str(fn), str(tp)]]


def worst_rows(m: dict) -> tuple[list[str], list[list[str]]]:
    return ["Image", "Defect type", "Why", "Score", "Mask IoU"], [
        [w["image"], w["defect_type"], w["reason"], fmt(w["score"]), fmt(w["iou"]) if m["mask"] else DASH]
        for w in m["worst_cases"]
    ]


SYNTH_NOTE = (
    "Data: synthetic images from `defectkit synth` (seed {seed}), not MVTec AD: these numbers test the "
    "pipeline and say nothing about real inspection performance"
)


def header_lines(report: dict) -> list[str]:
    sp, cfg = report["split"], report["config"]
    counts = sp["counts"]["test"]
    n_test = sum(counts.values())
    synth = sp.get("synthetic")
    title = f"# Defect inspection report: {sp['category']}" + (" (synthetic data)" if synth else "")
    return [
        title,
        "",
        *([f"- {SYNTH_NOTE.format(seed=synth.get('seed', '?'))}"] if synth else []),
        f"- Split manifest: `{sp['path']}` (fingerprint `{sp['fingerprint'][:16]}`, seed {sp['seed']}, "
        f"{sp['defects_to_train']} defect images per type moved to train)",
        f"- Test split: {n_test} images ({', '.join(f'{k} {v}' for k, v in counts.items())})",
        f"- Image threshold: `{cfg['threshold']}`, chosen on the val split, never on test; "
        f"bootstrap: {cfg['bootstrap']} resamples (seed {cfg['seed']}), 95% percentile intervals",
        "- `–`: the model does not produce this kind of output; `N/A`: the number is undefined",
        "",
    ]


def reference_text(report: dict) -> str:
    """Where the quoted reference numbers come from, and, under a synthetic run, that they do not compare."""
    text = f"{report['reference']['source']}."
    if report["split"].get("synthetic"):
        text += " This run is on synthetic data from `defectkit synth`: its numbers are not comparable."
    return text


def render_markdown(report: dict, figures: dict[str, str]) -> str:
    """report.md; ``figures`` maps figure keys ("curves", "worst:<model>") to relative PNG paths."""
    lines = header_lines(report)
    lines += ["## Models side by side (test split)", "", md_table(list(TABLE_COLUMNS), table_rows(report))]
    if report.get("reference"):
        ref = report["reference"]
        lines += [
            "## Reference",
            "",
            reference_text(report),
            "",
            md_table(
                ["Model", "Accuracy", "Defect F1"],
                [[r["model"], f"{r['accuracy']:g}", f"{r['f1']:g}"] for r in ref["rows"]],
            ),
        ]
    lines += ["## Per defect type (test split)", ""]
    for t, (header, rows) in per_type_tables(report).items():
        lines += [f"### {t}", "", md_table(header, rows)]
    if "curves" in figures:
        lines += [
            "## ROC and precision-recall curves (test split, image level)",
            "",
            f"![ROC and PR curves]({figures['curves']})",
            "",
        ]
    lines += ["## Details per model", ""]
    for m in report["models"]:
        lines += [
            f"### {m['name']} ({m['kind']})",
            "",
            f"- weights: `{m['weights']}`; predictions: `{m['prediction_folder']}`",
            f"- {notes_text(m)}",
            "",
            md_table(["Metric", "Value", "95% CI"], detail_rows(m)),
            "Confusion matrix (test):",
            "",
            md_table(*confusion_rows(m)),
        ]
        if m["worst_cases"]:
            lines += ["Worst cases:", "", md_table(*worst_rows(m))]
            key = f"worst:{m['name']}"
            if key in figures:
                lines += [f"![worst cases of {m['name']}]({figures[key]})", ""]
    lines += [
        "## Appendix: every number in report.json",
        "",
        md_table(["Path", "Value"], all_numbers(report)),
    ]
    return "\n".join(lines)
