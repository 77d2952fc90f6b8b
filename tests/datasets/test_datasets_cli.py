"""The foundation commands as a user runs them: output, files and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path


def test_synth_describe_split(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("synth", tmp_path / "data", "--n-train", "4", "--n-test-good", "2",
                           "--n-test-per-defect", "3", "--size", "40")
    assert code == 0 and out.strip() == str(tmp_path / "data" / "bottle")
    root = tmp_path / "data" / "bottle"
    code, out, _ = run_cli("describe", root)
    assert code == 0 and "Defect classes: 3" in out and "40x40 (15)" in out
    code, out, _ = run_cli("describe", root, "--json")
    card = json.loads(out)
    assert code == 0 and card["categories"][0]["totals"] == {"test": 11, "train": 4, "all": 15}
    code, out, _ = run_cli("split", root, "--defects-to-train", "1", "--seed", "3", "-o", tmp_path / "s.json")
    assert code == 0 and "train=" in out
    manifest = json.loads((tmp_path / "s.json").read_text())
    assert manifest["seed"] == 3 and manifest["counts"]["test"]["broken_large"] == 2


def test_missing_mask_exits_2_with_one_line(run_cli, tiny_dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "bottle"
    shutil.copytree(tiny_dataset, data)
    (data / "ground_truth/contamination/002_mask.png").unlink()
    code, out, err = run_cli("describe", data)
    assert code == 2 and out == ""
    assert err.startswith("defectkit: error: ") and "test/contamination/002.png: no mask" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, out, err = run_cli("describe", data, "--lenient")
    assert code == 0 and "1 warning(s)" in out


def test_bad_flag_values_exit_2(run_cli, tiny_dataset: Path, tmp_path: Path) -> None:
    code, _, err = run_cli("split", tiny_dataset, "--val-fraction", "1.5", "-o", tmp_path / "s.json")
    assert code == 2 and "val_fraction" in err
    code, _, err = run_cli("synth", tmp_path, "--size", "4")
    assert code == 2 and "size must be >= 32" in err


def test_help_imports_no_heavy_library() -> None:
    """--help must stay fast: building the whole parser tree imports none of the heavy libraries."""
    code = ("import sys; from defectkit.cli import build_parser; build_parser(); "
            "print([m for m in ('torch', 'ultralytics', 'segment_anything', 'cv2', 'sklearn', 'pycocotools',"
            " 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    for argv in (["--help"], ["describe", "--help"], ["split", "--help"], ["synth", "--help"]):
        res = subprocess.run([sys.executable, "-m", "defectkit", *argv], capture_output=True, text=True)
        assert res.returncode == 0 and "usage: defectkit" in res.stdout
