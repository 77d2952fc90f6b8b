"""MVTec AD 2 and VisA readers, layout detection, and every command's path through them."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectkit.datasets.describe import describe_dataset, format_card
from defectkit.datasets.layouts import detect_layout, scan_dataset
from defectkit.datasets.split import SplitConfig, load_split, make_split
from defectkit.datasets.synth import SynthConfig, generate_synthetic
from defectkit.errors import InputError

CFG = SynthConfig(n_train=5, n_test_good=2, n_test_per_defect=2, size=48, seed=1, categories=("bottle", "tile"))


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same synthetic samples written in the three layouts (read-only)."""
    base = tmp_path_factory.mktemp("layouts")
    return {lay: generate_synthetic(base / lay, SynthConfig(**{**CFG.__dict__, "layout": lay}))
            for lay in ("mvtec", "mvtec_ad2", "visa")}


def _copy(trees: dict[str, Path], layout: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trees[layout], tmp_path / layout))


def _totals(index) -> Counter:
    """(category, good|defect) counts: the same in every layout."""
    return Counter((r.category, "good" if r.label == 0 else "defect") for r in index.records)


def test_each_layout_is_detected_and_scans_to_the_same_counts(trees) -> None:
    idx = {lay: scan_dataset(root) for lay, root in trees.items()}
    for lay, index in idx.items():
        assert detect_layout(trees[lay]) == lay and index.layout == lay
        assert index.categories == ("bottle", "tile")
    assert _totals(idx["mvtec"]) == _totals(idx["mvtec_ad2"]) == _totals(idx["visa"])
    assert _totals(idx["visa"])[("tile", "defect")] == 4 and _totals(idx["visa"])[("bottle", "good")] == 7
    assert idx["mvtec_ad2"].defect_types("tile") == ("bad",)
    assert idx["visa"].defect_types() == ("anomaly",)
    ad2 = Counter((r.category, r.split) for r in idx["mvtec_ad2"].records)
    assert ad2[("bottle", "train")] == 4 and ad2[("bottle", "validation")] == 1 and ad2[("bottle", "test")] == 8
    # category folders and a VisA object folder are detected too
    assert detect_layout(trees["mvtec_ad2"] / "tile") == "mvtec_ad2"
    assert detect_layout(trees["visa"] / "tile") == "visa"
    assert detect_layout(trees["mvtec"] / "tile") == "mvtec"


def test_visa_object_folder_gives_the_roots_records_of_that_object(trees) -> None:
    whole = scan_dataset(trees["visa"])
    one = scan_dataset(trees["visa"] / "tile")
    assert one.categories == ("tile",) and one.records == whole.select(category="tile")
    assert one.category_root("tile") == whole.category_root("tile") == (trees["visa"] / "tile").resolve()


def test_masks_match_and_visa_masks_are_zero_one(trees) -> None:
    visa = scan_dataset(trees["visa"])
    ad2 = scan_dataset(trees["mvtec_ad2"])
    rec = next(r for r in visa.records if r.mask_path is not None)
    raw = np.asarray(Image.open(rec.mask_path))
    assert set(np.unique(raw)) == {0, 1}
    assert any("hold values 0/1" in w for w in visa.warnings)
    mvtec = scan_dataset(trees["mvtec"])
    areas = {lay: sorted(int((np.asarray(Image.open(r.mask_path)) > 0).sum()) for r in idx.records if r.mask_path)
             for lay, idx in (("mvtec", mvtec), ("ad2", ad2), ("visa", visa))}
    assert areas["mvtec"] == areas["ad2"] == areas["visa"] and min(areas["visa"]) > 0


def test_ad2_private_sets_skipped_with_one_counted_warning(trees) -> None:
    index = scan_dataset(trees["mvtec_ad2"])
    private = [w for w in index.warnings if "test_private" in w]
    assert len(private) == 1 and "skipped 4 folder(s)" in private[0] and "8 images without ground truth" in private[0]
    assert not any("test_private" in str(r.image_path) for r in index.records)


def test_ad2_private_warning_names_only_the_folders_found(trees, tmp_path) -> None:
    root = _copy(trees, "mvtec_ad2", tmp_path)
    for cat in ("bottle", "tile"):
        shutil.rmtree(root / cat / "test_private_mixed")
    (warning,) = [w for w in scan_dataset(root / "tile").warnings if "test_private" in w]
    assert "skipped 1 folder(s) test_private/ (2 images without ground truth" in warning
    assert "test_private_mixed" not in warning


def test_ad2_split_uses_validation_good_as_val(trees) -> None:
    m = make_split(scan_dataset(trees["mvtec_ad2"]), SplitConfig(defects_to_train=1, category="bottle"))
    val = m.subset("val")
    assert [e.name for e in val if e.label == 0] == ["validation_good_000"]
    assert all(e.image.startswith(("train/", "validation/", "test_public/")) for e in m.entries)
    assert {e.source_split for e in m.entries} == {"train", "validation", "test"}
    assert m.counts()["train"] == {"bad": 1, "good": 4}


def test_visa_split_paths_relative_to_the_object_and_torch_dataset(trees, tmp_path: Path) -> None:
    torch_data = pytest.importorskip("defectkit.datasets.torch_data")
    m = make_split(scan_dataset(trees["visa"]), SplitConfig(defects_to_train=1, category="tile"))
    path = m.save(tmp_path / "split.json")
    loaded = load_split(path)  # fingerprint checked against the files
    assert loaded.dataset == (trees["visa"] / "tile").resolve()
    assert loaded.entries[0].image.startswith("Data/Images/")
    ds = torch_data.ManifestDataset(loaded, "test", image_size=32, with_mask=True)
    items = [ds[i] for i in range(len(ds))]
    assert {tuple(it["image"].shape) for it in items} == {(3, 32, 32)}
    assert [float(it["mask"].sum()) > 0 for it in items] == [bool(it["label"]) for it in items]


def test_describe_names_the_layout(trees, run_cli) -> None:
    card = describe_dataset(scan_dataset(trees["mvtec_ad2"]))
    assert card["layout"] == "mvtec_ad2"
    text = format_card(card)
    assert text.startswith("Layout: MVTec AD 2 (mvtec_ad2)") and "validation good" in " ".join(text.split())
    code, out, _ = run_cli("describe", trees["visa"])
    assert code == 0 and out.startswith("Layout: VisA (visa)") and "anomaly" in out
    code, out, _ = run_cli("describe", trees["mvtec"] / "bottle")
    assert code == 0 and out.startswith("Layout: MVTec AD (mvtec)")


def test_ad2_missing_mask_is_an_error_naming_it(trees, tmp_path: Path) -> None:
    root = _copy(trees, "mvtec_ad2", tmp_path)
    (root / "tile/test_public/ground_truth/bad/crack_001_mask.png").unlink()
    with pytest.raises(InputError, match=r"test_public/bad/crack_001.png: no mask "
                                         r"test_public/ground_truth/bad/crack_001_mask.png"):
        scan_dataset(root)
    lenient = scan_dataset(root, lenient=True)
    assert any("dropped, --lenient" in w for w in lenient.warnings)


def _rewrite_csv(root: Path, edit) -> None:
    csv_path = root / "split_csv/1cls.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(edit(lines)) + "\n")


def test_visa_row_with_missing_file_names_the_csv_line(trees, tmp_path: Path) -> None:
    root = _copy(trees, "visa", tmp_path)
    (root / "tile/Data/Images/Normal/0003.JPG").unlink()
    with pytest.raises(InputError, match=r"1cls.csv line \d+: image tile/Data/Images/Normal/0003.JPG not found"):
        scan_dataset(root)
    root2 = _copy(trees, "visa", tmp_path / "b")
    (root2 / "bottle/Data/Masks/Anomaly/002.png").unlink()
    with pytest.raises(InputError, match=r"line \d+: mask bottle/Data/Masks/Anomaly/002.png not found"):
        scan_dataset(root2)


def test_visa_bad_csv_values_and_header(trees, tmp_path: Path) -> None:
    root = _copy(trees, "visa", tmp_path)
    _rewrite_csv(root, lambda ls: [ls[0], ls[1].replace(",train,", ",training,"), *ls[2:]])
    with pytest.raises(InputError, match=r"line 2: split 'training'"):
        scan_dataset(root)
    _rewrite_csv(root, lambda ls: [ls[0], ls[1].replace(",training,", ",train,").replace("bottle,", "tile,", 1), *ls[2:]])
    with pytest.raises(InputError, match=r"line 2: image bottle/Data/Images/Normal/0000.JPG is not inside the "
                                         r"object's folder tile/"):
        scan_dataset(root)
    _rewrite_csv(root, lambda ls: ["object,split,image,mask", *ls[1:]])
    with pytest.raises(InputError, match=r"1cls.csv: header .* lacks \['label'\]"):
        scan_dataset(root)
    (root / "split_csv/1cls.csv").unlink()
    with pytest.raises(InputError, match=r"split_csv/1cls.csv: missing"):
        scan_dataset(root)


def test_visa_mask_values_other_than_0_1_255_are_defect_and_counted(trees, tmp_path: Path) -> None:
    root = _copy(trees, "visa", tmp_path)
    masks = sorted((root / "tile/Data/Masks/Anomaly").glob("*.png"))
    first = np.asarray(Image.open(masks[0]))
    Image.fromarray((first * 2).astype(np.uint8)).save(masks[0])  # labels 0/2
    second = np.asarray(Image.open(masks[1]))
    Image.fromarray((second * 255).astype(np.uint8)).save(masks[1])  # 0/255 is fine too
    index = scan_dataset(root)
    odd = [w for w in index.warnings if "other than 0/1/255" in w]
    assert len(odd) == 1 and "1 mask(s)" in odd[0] and "000.png: [2]" in odd[0]
    from defectkit.datasets.io import read_mask

    assert np.array_equal(read_mask(masks[0]).mask, first > 0)
    assert np.array_equal(read_mask(masks[1]).mask, second > 0)


def test_visa_mask_size_mismatch_and_large_images(trees, tmp_path: Path) -> None:
    root = _copy(trees, "visa", tmp_path)
    Image.new("RGB", (1100, 40), (90, 90, 90)).save(root / "tile/Data/Images/Normal/0001.JPG")
    index = scan_dataset(root)
    large = [w for w in index.warnings if "larger than 1024 px" in w]
    assert large == ["tile: 1 image(s) larger than 1024 px on the long side (largest 1100x40, 0001.JPG); "
                     "models resize them, conversions keep full size"]
    Image.new("L", (10, 10)).save(root / "bottle/Data/Masks/Anomaly/001.png")
    with pytest.raises(InputError, match=r"line \d+: mask .*001.png size 10x10 differs from image size 48x48"):
        scan_dataset(root)


def test_a_root_mixing_mvtec_and_ad2_is_refused(trees, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(trees["mvtec"] / "bottle", mixed / "bottle")
    shutil.copytree(trees["mvtec_ad2"] / "tile", mixed / "tile")
    with pytest.raises(InputError, match="mixes MVTec AD categories \\(bottle\\) and MVTec AD 2 categories \\(tile\\)"):
        detect_layout(mixed)


def test_split_cli_works_on_every_layout(trees, run_cli, tmp_path: Path) -> None:
    for lay, root in trees.items():
        code, out, err = run_cli("split", root, "--category", "tile", "--defects-to-train", "1",
                                 "-o", tmp_path / f"{lay}.json")
        assert code == 0 and "test=" in out, err
        m = load_split(tmp_path / f"{lay}.json")
        assert sum(e.label for e in m.entries) == 4
