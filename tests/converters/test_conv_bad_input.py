"""Bad input to `defectkit convert`: clear errors naming the file, counted warnings, no partial output."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectkit.converters import ConvertConfig, convert_dataset, load_coco
from defectkit.datasets.mvtec import scan_mvtec
from defectkit.datasets.split import SplitConfig, data_fingerprint, load_split, make_split


def _dataset_with(tmp_path: Path, tiny_dataset: Path, edit) -> tuple[Path, Path, Path]:
    """Copy the tiny dataset, split it, apply ``edit(mask_path)`` to one defect mask, re-fingerprint."""
    data = tmp_path / "bottle"
    shutil.copytree(tiny_dataset, data)
    manifest = make_split(scan_mvtec(data), SplitConfig(defects_to_train=1, val_fraction=0.25))
    entry = next(e for e in manifest.entries if e.split == "test" and e.mask)
    mask_path = manifest.mask_path(entry)
    edit(mask_path)
    files = [e.image for e in manifest.entries] + [e.mask for e in manifest.entries if e.mask]
    manifest = dataclasses.replace(manifest, fingerprint=data_fingerprint(data, files))
    return data, manifest.save(tmp_path / "split.json"), mask_path


def _resize(path: Path) -> None:
    Image.open(path).resize((32, 32)).save(path)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_mask_size_mismatch_names_the_mask_and_writes_nothing(
    tmp_path, tiny_dataset, run_cli, workers
) -> None:
    data, split, mask = _dataset_with(tmp_path, tiny_dataset, _resize)
    out = tmp_path / "out"
    code, _, err = run_cli("convert", data, "--split", split, "-o", out, "--workers", workers)
    assert code == 2
    assert f"{mask}: mask size 32x32 differs from image size 64x64" in err
    assert not [p for p in out.rglob("*") if p.is_file()]


@pytest.mark.parametrize("mode", ["I;16", "RGBA", "P", "LA"])
def test_other_mask_modes_give_the_same_labels(tmp_path, tiny_dataset, mode) -> None:
    def convert_mode(path: Path) -> None:
        arr = np.asarray(Image.open(path).convert("L"))
        if mode == "I;16":
            Image.fromarray(arr.astype(np.uint16) * 257).save(path)
        else:
            Image.fromarray(arr).convert(mode).save(path)

    data, split, _ = _dataset_with(tmp_path, tiny_dataset, convert_mode)
    cfg = ConvertConfig(dataset=str(data), split=str(split), output=str(tmp_path / "out"), formats=("coco",))
    convert_dataset(cfg)
    clean = ConvertConfig(
        dataset=str(tiny_dataset), split=str(split), output=str(tmp_path / "ref"), formats=("coco",)
    )
    with pytest.raises(Exception, match="fingerprint"):
        convert_dataset(clean)  # a split is tied to its data
    ref_split = make_split(scan_mvtec(tiny_dataset), SplitConfig(defects_to_train=1, val_fraction=0.25))
    convert_dataset(dataclasses.replace(clean, split=str(ref_split.save(tmp_path / "ref.json"))))
    for s in ("train", "val", "test"):
        assert (
            load_coco(tmp_path / "out" / "coco" / f"{s}.json")["annotations"]
            == load_coco(tmp_path / "ref" / "coco" / f"{s}.json")["annotations"]
        )


def test_non_binary_and_empty_masks_are_counted_warnings(tmp_path, tiny_dataset, caplog) -> None:
    def soften(path: Path) -> None:
        arr = np.asarray(Image.open(path).convert("L")).copy()
        arr[arr == 255] = 200
        arr[0, 0] = 100  # below the >127 threshold: not part of the mask
        Image.fromarray(arr).save(path)

    data, split, _ = _dataset_with(tmp_path, tiny_dataset, soften)
    report = convert_dataset(
        ConvertConfig(dataset=str(data), split=str(split), output=str(tmp_path / "a"), formats=("coco",))
    )
    assert report.nonbinary_masks == 1 and report.empty_masks == 0
    assert any("not binary" in w for w in report.warnings)

    data2, split2, mask2 = _dataset_with(
        tmp_path / "b", tiny_dataset, lambda p: Image.fromarray(np.zeros((64, 64), np.uint8)).save(p)
    )
    report = convert_dataset(
        ConvertConfig(
            dataset=str(data2), split=str(split2), output=str(tmp_path / "b2"), formats=("coco", "yolo")
        )
    )
    assert report.empty_masks == 1
    assert any(str(mask2) in w for w in report.warnings)
    assert "no instance left" in caplog.text


def test_specks_below_min_area_are_dropped_and_counted(tiny_dataset, tiny_split, tmp_path) -> None:
    base = ConvertConfig(
        dataset=str(tiny_dataset),
        split=str(tiny_split),
        output=str(tmp_path / "a"),
        formats=("coco",),
        min_area=1,
    )
    many = convert_dataset(base)
    few = convert_dataset(dataclasses.replace(base, output=str(tmp_path / "b"), min_area=10_000))
    assert many.dropped_specks == 0 and sum(c["instances"] for c in few.counts.values()) == 0
    assert few.dropped_specks == sum(c["instances"] for c in many.counts.values())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--to", "coco", "json"], "--to: unknown format"),
        (["--min-area", "0"], "--min-area: must be >= 1"),
        (["--names", "scratch=big scratch"], "--names: unknown class(es) ['scratch']"),
        (["--names", "broken_large"], "--names: expected TYPE"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    tiny_dataset, tiny_split, tmp_path, run_cli, extra, message
) -> None:
    code, _, err = run_cli("convert", tiny_dataset, "--split", tiny_split, "-o", tmp_path / "o", *extra)
    assert code == 2 and message in err


def test_unwritable_output_and_wrong_dataset(tiny_dataset, tiny_split, tmp_path, run_cli) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli("convert", tiny_dataset, "--split", tiny_split, "-o", blocker / "labels")
    assert code == 2 and f"{blocker / 'labels'}: cannot create output folder" in err
    code, _, err = run_cli("convert", tmp_path / "nowhere", "--split", tiny_split, "-o", tmp_path / "o")
    assert code == 2 and "dataset folder not found" in err
    code, _, err = run_cli(
        "convert", tiny_dataset, "--split", tmp_path / "missing.json", "-o", tmp_path / "o"
    )
    assert code == 2 and "missing.json: split manifest not found" in err
    assert load_split(tiny_split).entries  # the shared fixture is untouched


def test_fingerprint_from_worker_hashes_matches_the_split_module(tiny_dataset, tiny_split) -> None:
    from defectkit.datasets.split import fingerprint_from_hashes
    from defectkit.fileio import sha256_file

    manifest = load_split(tiny_split)
    files = [e.image for e in manifest.entries] + [e.mask for e in manifest.entries if e.mask]
    hashes = {f: sha256_file(manifest.dataset / f) for f in files}
    assert (
        fingerprint_from_hashes(hashes) == data_fingerprint(manifest.dataset, files) == manifest.fingerprint
    )


def test_changed_data_is_refused_before_anything_is_written(tmp_path, tiny_dataset, run_cli) -> None:
    data, split, mask = _dataset_with(tmp_path, tiny_dataset, lambda p: None)
    Image.open(mask).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mask)  # same size, new content
    code, _, err = run_cli("convert", data, "--split", split, "-o", tmp_path / "out")
    assert code == 2 and f"{split}: fingerprint does not match the data in {data.resolve()}" in err
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
