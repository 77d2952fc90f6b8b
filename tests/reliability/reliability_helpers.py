"""Helpers of the reliability tests (issue 16): tiny data settings, the one-line-error check,
prediction folders, killed subprocesses."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from defectkit.datasets.synth import SynthConfig

SMALL = SynthConfig(category="bottle", n_train=6, n_test_good=3, n_test_per_defect=3, size=32, seed=0)


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root`` (to show inputs are unchanged)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_line_error(code: int, err: str, *needles: str, expect: int = 2) -> None:
    """Exit ``expect``; stderr's last line is ``defectkit: error: ...`` naming every needle; no traceback."""
    assert code == expect, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("defectkit: error: "), err
    for needle in needles:
        assert needle in last, (needle, last)


def write_scores(folder: Path, split: Path, score=lambda e: float(e.label)) -> Path:
    """A classifier prediction folder (image_scores.csv + prediction_meta.json) over val and test."""
    from defectkit.datasets.split import load_split

    manifest = load_split(split)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["image,split,defect_type,label,score"] + [
        f"{e.name},{e.split},{e.defect_type},{e.label},{score(e)!r}"
        for e in manifest.entries
        if e.split in ("val", "test")
    ]
    (folder / "image_scores.csv").write_text("\n".join(rows) + "\n")
    (folder / "prediction_meta.json").write_text(json.dumps({"kind": "classifier", "model": folder.name}))
    return folder


def eval_argv(split: Path, labels: Path, out: Path, *extra: str | Path, **preds: Path) -> list:
    """``eval`` arguments with one ``--pred NAME=DIR`` per keyword."""
    pairs = [x for name, folder in preds.items() for x in ("--pred", f"{name}={folder}")]
    return ["eval", "--split", split, "--labels", labels, "-o", out, *pairs, *extra]


def killed_run(argv: list, patch: str) -> None:
    """``defectkit ARGV`` in a subprocess that SIGKILLs itself where ``patch`` says (Python source
    run before the command; it may use ``kill()``)."""
    script = (
        "import os, signal\n"
        "def kill():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"{patch}\n"
        "from defectkit.cli import main\n"
        f"main({[str(a) for a in argv]!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr


def children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out |= {int(c) for c in (task / "children").read_text().split()}
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
