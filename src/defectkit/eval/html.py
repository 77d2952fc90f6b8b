"""report.html: one self-contained file (inline CSS, PNG figures as base64 data URIs, no network)."""

from __future__ import annotations

import base64
from html import escape

from defectkit.eval.report import (
    TABLE_COLUMNS,
    all_numbers,
    confusion_rows,
    detail_rows,
    header_lines,
    notes_text,
    per_type_tables,
    reference_text,
    table_rows,
    worst_rows,
)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#222;line-height:1.4;padding:0 1rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#f2f4f7} td.num{text-align:right;font-variant-numeric:tabular-nums}
h1{font-size:1.6rem} h2{margin-top:2rem;border-bottom:1px solid #ddd} img{max-width:100%}
details summary{cursor:pointer;color:#555} code{background:#f5f5f5;padding:0 .2rem}
"""


def _cell(value: str, tag: str = "td") -> str:
    numeric = tag == "td" and value.replace(".", "", 1).replace("-", "", 1).isdigit()
    cls = ' class="num"' if numeric else ""
    return f"<{tag}{cls}>{escape(value)}</{tag}>"


def html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(_cell(h, "th") for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _intro(report: dict) -> str:
    lines = header_lines(report)
    title = escape(lines[0].removeprefix("# "))
    items = "".join(f"<li>{escape(x[2:]).replace('`', '')}</li>" for x in lines[2:] if x.startswith("- "))
    return f"<h1>{title}</h1><ul>{items}</ul>"


def _model_section(m: dict, worst: bytes | None) -> str:
    parts = [
        f"<h3>{escape(m['name'])} ({escape(m['kind'])})</h3>",
        f"<p>weights: <code>{escape(str(m['weights']))}</code>; predictions: "
        f"<code>{escape(m['prediction_folder'])}</code><br>{escape(notes_text(m))}</p>",
        html_table(["Metric", "Value", "95% CI"], detail_rows(m)),
        "<p>Confusion matrix (test):</p>",
        html_table(*confusion_rows(m)),
    ]
    if m["worst_cases"]:
        parts += [
            "<p>Worst cases (green: ground truth, red: prediction):</p>",
            html_table(*worst_rows(m)),
            _img(worst, f"worst cases of {m['name']}"),
        ]
    return "".join(parts)


def render_html(report: dict, figures: dict[str, bytes]) -> str:
    """The whole report as one HTML page; ``figures`` maps "curves" / "worst:<model>" to PNG bytes."""
    parts = [
        _intro(report),
        "<h2>Models side by side (test split)</h2>",
        html_table(list(TABLE_COLUMNS), table_rows(report)),
    ]
    if report.get("reference"):
        ref = report["reference"]
        parts += [
            "<h2>Reference</h2>",
            f"<p>{escape(reference_text(report).replace('`', ''))}</p>",
            html_table(
                ["Model", "Accuracy", "Defect F1"],
                [[r["model"], f"{r['accuracy']:g}", f"{r['f1']:g}"] for r in ref["rows"]],
            ),
        ]
    parts.append("<h2>Per defect type (test split)</h2>")
    for t, (header, rows) in per_type_tables(report).items():
        parts += [f"<h3>{escape(t)}</h3>", html_table(header, rows)]
    if figures.get("curves"):
        parts += [
            "<h2>ROC and precision-recall curves (test split, image level)</h2>",
            _img(figures["curves"], "ROC and PR curves"),
        ]
    parts.append("<h2>Details per model</h2>")
    parts += [_model_section(m, figures.get(f"worst:{m['name']}")) for m in report["models"]]
    parts += [
        "<h2>Appendix: every number in report.json</h2><details><summary>show</summary>",
        html_table(["Path", "Value"], all_numbers(report)),
        "</details>",
    ]
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>defectkit report</title>'
        f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n"
    )
