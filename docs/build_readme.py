"""Assemble README.md from docs/readme_head.md, the guides in docs/guide/ and docs/readme_tail.md.

Guide headings are demoted one level (outside code fences) so they nest under "User guide".
The demo table comes from a committed file, docs/demo_table.txt (the table the last full
``defectkit demo`` printed), so anyone can rebuild the README; ``--table FILE`` replaces that file
with a new demo's table first.

Usage: python docs/build_readme.py [--table FILE]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ORDER = ("datasets", "converters", "yolo_world", "sam", "image_models", "eval", "annotate", "failure_behaviour")


def demote(text: str) -> str:
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


TABLE = DOCS / "demo_table.txt"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", type=Path, help="a new demo table (text file) to store in docs/demo_table.txt")
    args = ap.parse_args(argv)  # unknown flags are an error, never silently ignored
    if args.table is not None:
        shutil.copyfile(args.table, TABLE)
    table = "```\n" + TABLE.read_text(encoding="utf-8").rstrip() + "\n```"
    head = (DOCS / "readme_head.md").read_text()
    parts = [head.replace("DEMO_TABLE_PLACEHOLDER", table)]
    for name in ORDER:
        parts.append(demote((DOCS / "guide" / f"{name}.md").read_text().strip()))
    parts.append((DOCS / "readme_tail.md").read_text())
    (DOCS.parent / "README.md").write_text("\n\n".join(p.strip() for p in parts) + "\n")


if __name__ == "__main__":
    main()
