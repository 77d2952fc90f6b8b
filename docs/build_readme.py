"""Assemble README.md from docs/readme_head.md, the guides in docs/guide/ and docs/readme_tail.md.

Guide headings are demoted one level (outside code fences) so they nest under "User guide".
Usage: python docs/build_readme.py [--table FILE]  (FILE: the demo's printed table, in a code block)
"""

from __future__ import annotations

import sys
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


def main(argv: list[str]) -> None:
    table = ""
    if len(argv) == 2 and argv[0] == "--table":
        table = "```\n" + Path(argv[1]).read_text().rstrip() + "\n```"
    head = (DOCS / "readme_head.md").read_text()
    parts = [head.replace("DEMO_TABLE_PLACEHOLDER", table or "(run `defectkit demo` to see the table)")]
    for name in ORDER:
        parts.append(demote((DOCS / "guide" / f"{name}.md").read_text().strip()))
    parts.append((DOCS / "readme_tail.md").read_text())
    (DOCS.parent / "README.md").write_text("\n\n".join(p.strip() for p in parts) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
