"""Shared fixtures: tiny synthetic MVTec-format data built with the project's own generator."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectkit.datasets.mvtec import scan_mvtec
from defectkit.datasets.split import SplitConfig, make_split
from defectkit.datasets.synth import SynthConfig, generate_synthetic

TINY = SynthConfig(category="bottle", n_train=8, n_test_good=4, n_test_per_defect=4, size=64, seed=0)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64 px synthetic bottle category: 8 train-good, 4 test-good, 4 per defect type (read-only!)."""
    return generate_synthetic(tmp_path_factory.mktemp("tiny_data"), TINY)


@pytest.fixture(scope="session")
def tiny_split(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """split.json over ``tiny_dataset``: 1 image per defect type moved to train, val fraction 0.25."""
    manifest = make_split(
        scan_mvtec(tiny_dataset), SplitConfig(defects_to_train=1, val_fraction=0.25, seed=0)
    )
    return manifest.save(tmp_path_factory.mktemp("tiny_split") / "split.json")


@pytest.fixture(scope="session")
def good_only_labels(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LABELS (coco + yolo) of the default split (no --defects-to-train): no defect image in train."""
    from defectkit.converters.convert import ConvertConfig, convert_dataset

    base = tmp_path_factory.mktemp("good_only")
    split = make_split(scan_mvtec(tiny_dataset), SplitConfig(val_fraction=0.25, seed=0)).save(
        base / "split.json"
    )
    formats = ("coco", "yolo")
    convert_dataset(
        ConvertConfig(dataset=str(tiny_dataset), split=str(split), output=str(base), formats=formats)
    )
    return base


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture):
    """Run ``defectkit`` in-process: ``code, out, err = run_cli("describe", path)``."""
    from defectkit.cli import main

    def _run(*argv: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _run


@pytest.fixture(autouse=True)
def _isolated_defectkit_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights names resolve into a fresh, empty $DEFECTKIT_HOME, never the user's own."""
    monkeypatch.setenv("DEFECTKIT_HOME", str(tmp_path_factory.mktemp("defectkit_home")))
    monkeypatch.delenv("DEFECTKIT_WEIGHTS_URL", raising=False)
