"""The README is what docs/build_readme.py builds, and every relative link in the docs resolves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_readme_is_up_to_date_with_its_sources() -> None:
    res = _run("docs/build_readme.py", "--check")
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_relative_link_in_the_docs_resolves() -> None:
    res = _run("docs/check_links.py")
    assert res.returncode == 0, res.stdout + res.stderr


def test_readme_holds_the_ci_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = ci[next(i for i, line in enumerate(ci) if "README test command" in line) + 1]
    assert command.strip() in (REPO / "README.md").read_text(encoding="utf-8")


def test_build_readme_refuses_unknown_flags() -> None:
    res = _run("docs/build_readme.py", "--tabel", "x")
    assert res.returncode == 2 and "unrecognized arguments" in res.stderr


def test_architecture_layout_names_every_module() -> None:
    """docs/ARCHITECTURE.md's package layout lists every module of every package (kept in sync)."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    layout = text[text.index("## Package layout"):text.index("## Where to add a new model")]
    for sep in ",;:()/":
        layout = layout.replace(sep, " ")
    words = set(layout.split())
    src = REPO / "src" / "defectkit"
    missing = sorted(
        str(p.relative_to(src)) for p in src.rglob("*.py")
        if p.stem != "__init__" and "__pycache__" not in p.parts
        and p.stem not in words and p.name not in words
    )
    assert missing == []
