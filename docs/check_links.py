"""Check every relative link in README.md and docs/**/*.md.

A link ``[text](target)`` outside code is broken when its file does not exist (relative to the
linking file) or when its ``#anchor`` names no heading of the target Markdown file (GitHub's
heading ids: lower case, punctuation dropped, spaces to hyphens, ``-1``, ``-2`` for repeats).
Links to other sites (``http:``, ``https:``, ``mailto:``) are not checked; docs/readme_head.md and
docs/readme_tail.md are checked through the README built from them. Files named in
``--allow`` (paths from the repository root; default: none) count as existing, for
pages another change adds; anchors into them are not checked.

Usage: python docs/check_links.py [--allow PATH ...] [FILE ...]
Exit codes: 0 every link resolves, 1 broken links (listed as FILE:LINE: TARGET: why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ALLOW: tuple[str, ...] = ()
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+\1")
EXTERNAL = ("http://", "https://", "mailto:", "ftp://")


def _code_free_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line with inline code removed) for every line outside fenced code blocks."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        marker = stripped[:3]
        if marker in ("```", "~~~"):
            if fence is None:
                fence = marker
            elif marker == fence:
                fence = None
            continue
        if fence is None:
            out.append((number, INLINE_CODE.sub("", line)))
    return out


def slug(heading: str) -> str:
    """GitHub's id of a heading text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading id of a Markdown file (repeats numbered as GitHub does)."""
    seen: dict[str, int] = {}
    ids: set[str] = set()
    fence = None
    for line in path.read_text(encoding="utf-8").splitlines():
        marker = line.lstrip()[:3]
        if marker in ("```", "~~~"):
            fence = marker if fence is None else (None if marker == fence else fence)
            continue
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line) if fence is None else None
        if match:
            base = slug(match.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            ids.add(base if n == 0 else f"{base}-{n}")
    return ids


def check_file(path: Path, allow: set[Path]) -> list[str]:
    """Problems of one Markdown file, as 'FILE:LINE: TARGET: why'."""
    problems = []
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    for number, line in _code_free_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(line):
            target = match.group(1)
            if target.startswith(EXTERNAL):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            why = None
            if dest in allow:
                continue
            if not dest.exists():
                why = "no such file"
            elif anchor and dest.suffix == ".md" and dest.is_file() and anchor not in anchors(dest):
                why = f"no heading with id #{anchor} in {dest.relative_to(ROOT)}"
            if why:
                problems.append(f"{rel}:{number}: {target}: {why}")
    return problems


#: README fragments: their links are relative to the README, which is checked instead
FRAGMENTS = ("docs/readme_head.md", "docs/readme_tail.md")


def default_files() -> list[Path]:
    skip = {ROOT / f for f in FRAGMENTS}
    return [ROOT / "README.md", *(p for p in sorted((ROOT / "docs").rglob("*.md")) if p not in skip)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, help="Markdown files (default: README.md and docs/**/*.md)")
    ap.add_argument("--allow", nargs="+", default=list(DEFAULT_ALLOW), metavar="PATH",
                    help="files that count as existing (default: %(default)s)")
    args = ap.parse_args(argv)
    allow = {(ROOT / p).resolve() for p in args.allow}
    files = [f.resolve() for f in args.files] or default_files()
    problems = []
    for path in files:
        if not path.is_file():
            problems.append(f"{path}: no such file")
            continue
        problems += check_file(path, allow)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_links: {len(problems)} broken link(s) in {len(files)} file(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
