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
