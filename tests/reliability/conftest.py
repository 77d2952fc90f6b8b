"""Fixtures of the reliability tests: one tiny synthetic category, its split and labels (read-only:
copy before changing anything), a tiny full disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_helpers import SMALL

from defectkit.datasets.synth import generate_synthetic


@pytest.fixture(autouse=True)
def plain_pil_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """An earlier test may have imported ultralytics, which patches ``PIL.Image.open`` process-wide
    (``defectkit`` undoes it in ``import_ultralytics``; a test importing ultralytics directly does not)."""
    from PIL import Image

    original = getattr(sys.modules.get("ultralytics.utils.patches"), "_image_open", None)
    if original is not None:
        monkeypatch.setattr(Image, "open", original)


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32 px synthetic category (read-only: copy it before changing anything)."""
    return generate_synthetic(tmp_path_factory.mktemp("hostile_data"), SMALL)


@pytest.fixture(scope="session")
def split(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from defectkit.datasets.mvtec import scan_mvtec
    from defectkit.datasets.split import SplitConfig, make_split

    manifest = make_split(scan_mvtec(data), SplitConfig(defects_to_train=2, val_fraction=0.5, seed=0))
    return manifest.save(tmp_path_factory.mktemp("hostile_split") / "split.json")


@pytest.fixture(scope="session")
def labels(data: Path, split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from defectkit.converters.convert import ConvertConfig, convert_dataset

    out = tmp_path_factory.mktemp("hostile_labels")
    convert_dataset(
        ConvertConfig(dataset=str(data), split=str(split), output=str(out), formats=("coco", "yolo"))
    )
    return out


@pytest.fixture
def data_copy(data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(data, tmp_path / "bottle"))


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 96 KiB tmpfs (root only): every write beyond that fails with ENOSPC."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
