"""Build README.md from docs/readme_head.md, the committed demo table and docs/readme_tail.md.

README.md = readme_head.md + docs/demo_table.txt (as a code block) + readme_tail.md. The guides
in docs/guide/ are linked from the README, not copied into it. The demo table is a committed file
(the table the last full ``defectkit demo`` printed), so anyone can rebuild the README;
``--table FILE`` stores a new demo's table (the table ``defectkit demo`` printed at its end, saved
as a text file) in docs/demo_table.txt first.

The README's Quickstart must hold the test command of ``.ci/run`` (the line after its
"README test command" marker) verbatim; the build stops when they differ.

Usage:
    python docs/build_readme.py                # write README.md
    python docs/build_readme.py --check        # exit 1 when README.md is not what would be written
    python docs/build_readme.py --table FILE   # store a new demo table, then write README.md

Unknown flags are an error. Exit codes: 0 done (or up to date), 1 README.md out of date
(``--check``), 2 a file it needs is missing or the test commands disagree.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
HEAD = DOCS / "readme_head.md"
TABLE = DOCS / "demo_table.txt"
TAIL = DOCS / "readme_tail.md"
CI_RUN = ROOT / ".ci" / "run"
README = ROOT / "README.md"
CI_MARKER = "README test command"


class BuildError(Exception):
    """A file the build needs is missing or inconsistent (one line for the user)."""


def _read(path: Path, what: str) -> str:
    if not path.is_file():
        raise BuildError(f"{path.relative_to(ROOT)}: missing ({what})")
    return path.read_text(encoding="utf-8")


def ci_test_command() -> str:
    """The command line after the "README test command" marker in .ci/run."""
    lines = _read(CI_RUN, "the CI script whose test command the README quotes").splitlines()
    for i, line in enumerate(lines):
        if CI_MARKER in line and i + 1 < len(lines) and lines[i + 1].strip():
            return lines[i + 1].strip()
    raise BuildError(f"{CI_RUN.relative_to(ROOT)}: no command line after a '# --- {CI_MARKER}' marker")


def build() -> str:
    """The README text: head, the demo table as a code block, tail."""
    head = _read(HEAD, "the README's first part").strip()
    table = _read(TABLE, "the demo table; store one with --table FILE").rstrip()
    tail = _read(TAIL, "the README's last part").strip()
    if not table.strip():
        raise BuildError(f"{TABLE.relative_to(ROOT)}: empty (store a demo table with --table FILE)")
    text = f"{head}\n\n```\n{table}\n```\n\n{tail}\n"
    command = ci_test_command()
    if command not in (line.strip() for line in text.splitlines()):
        raise BuildError(f"README Quickstart lacks the test command of .ci/run verbatim: {command}")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--table", type=Path, help="a new demo table (text file) to store in docs/demo_table.txt")
    group.add_argument("--check", action="store_true", help="write nothing; exit 1 when README.md is out of date")
    args = ap.parse_args(argv)  # unknown flags are an error (exit 2), never silently ignored
    try:
        if args.table is not None:
            if not args.table.is_file():
                raise BuildError(f"{args.table}: no such file (--table)")
            shutil.copyfile(args.table, TABLE)
        text = build()
    except BuildError as exc:
        print(f"build_readme: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = README.read_text(encoding="utf-8") if README.is_file() else None
        if current != text:
            print("build_readme: README.md is out of date: run python docs/build_readme.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
