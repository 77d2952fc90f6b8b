"""``defectkit run`` over an MVTec root (``categories: all`` or a list) and the cross-category report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from defectkit.errors import InputError
from defectkit.eval.summary import SUMMARY_METRICS, metric_rows, summary_markdown, summary_table
from defectkit.pipeline.run import load_pipeline_yaml

REPO = Path(__file__).resolve().parents[2]
CATEGORIES = ("bottle", "bottle_b", "tile")


@pytest.fixture(scope="module")
def mvtec_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny synthetic categories side by side, like an MVTec AD root (read-only!): two
    bottle-like objects and the tile texture."""
    from defectkit.datasets.synth import SynthConfig, generate_synthetic

    root = tmp_path_factory.mktemp("mvtec_root")
    for seed, name in enumerate(CATEGORIES):
        generate_synthetic(root, SynthConfig(category=name, n_train=8, n_test_good=4, n_test_per_defect=4,
                                             size=64, seed=seed))
    (root / "license.txt").write_text("not a category")
    return root


def _pipeline(tmp_path: Path, root: Path, categories, **extra) -> Path:
    small = {"epochs": 1, "image_size": 32, "batch_size": 8, "device": "cpu"}
    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump({
        "output": "out", "dataset": str(root), "categories": categories,
        "split": {"defects_to_train": 1, "val_fraction": 0.25},
        "convert": {"formats": ["coco"]},
        "sam": {"model_type": "tiny", "epochs": 1, "train": "decoder", "batch_size": 1, "device": "cpu"},
        "classifier": {"arch": "resnet18", "weights": "none", **small},
        "autoencoder": {"arch": "conv", "width": 8, "latent": 8, **small},
        "eval": {"bootstrap": 0, "threshold": "good-recall=0.9"},
        **extra,
    }))
    return p


def _model(name: str, auroc, acc, f1, box=None, iou=None) -> dict:
    return {"name": name, "image": {"auroc": auroc, "accuracy": acc, "f1": f1},
            "box": None if box is None else {"AP50": box}, "mask": None if iou is None else {"iou": iou}}


def test_summary_table_means_na_and_failed() -> None:
    outcomes = [
        {"category": "a", "status": "ok", "report": {"models": [_model("Det", 0.9, 0.8, 0.7, box=0.5, iou=0.4),
                                                                _model("AE", 0.6, 0.5, None)]}},
        {"category": "b", "status": "failed", "stage": "sam_train", "error": "RuntimeError: boom"},
        {"category": "c", "status": "ok", "report": {"models": [_model("Det", 0.7, 0.6, 0.5, box=None, iou=0.2),
                                                                _model("AE", 0.8, 0.7, 0.3)]}},
    ]
    table = summary_table(outcomes)
    assert table["models"] == ["Det", "AE"] and [m["key"] for m in table["metrics"]] == [k for k, _ in SUMMARY_METRICS]
    mean = table["mean"]
    assert (mean["n_ok"], mean["n_categories"]) == (2, 3)
    assert mean["values"]["Det"]["image_auroc"] == {"mean": pytest.approx(0.8), "n": 2}
    assert mean["values"]["Det"]["box_map50"] == {"mean": 0.5, "n": 1}  # c's box number is undefined
    assert mean["values"]["AE"]["defect_f1"] == {"mean": 0.3, "n": 1}
    assert mean["values"]["AE"]["box_map50"] == {"mean": None, "n": 0}  # the AE has no boxes
    header, rows = metric_rows(table, "box_map50")
    assert header == ["Category", "Det", "AE"]
    assert rows == [["a", "0.500", "N/A"], ["b", "failed", "failed"], ["c", "N/A", "N/A"],
                    ["mean (2 of 3 categories)", "0.500 (n=1)", "N/A"]]
    assert metric_rows(table, "image_auroc")[1][-1] == ["mean (2 of 3 categories)", "0.800", "0.700"]
    md = summary_markdown(table)
    assert "## Image AUROC (test split)" in md and "| b | sam_train | failed |" not in md
    assert "| b | failed | sam_train | RuntimeError: boom |" in md


def test_categories_key_is_checked(tmp_path: Path, mvtec_root: Path, run_cli) -> None:
    from defectkit.pipeline.multi import resolve_categories

    cfg = load_pipeline_yaml(_pipeline(tmp_path, mvtec_root, "all"))
    assert resolve_categories(cfg) == CATEGORIES  # license.txt is not a category
    cfg = load_pipeline_yaml(_pipeline(tmp_path, mvtec_root, ["tile", "bottle"]))
    assert resolve_categories(cfg) == ("bottle", "tile")
    code, out, err = run_cli("run", _pipeline(tmp_path, mvtec_root, ["bottle", "cable", "screw"]))
    assert code == 2 and out == ""
    assert f"categories: ['cable', 'screw'] not in {mvtec_root} (available: bottle, bottle_b, tile)" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="categories: expected `all` or a list"):
        load_pipeline_yaml(_pipeline(tmp_path, mvtec_root, "every"))
    with pytest.raises(InputError, match="categories: needs `dataset:` an MVTec root"):
        load_pipeline_yaml(_pipeline(tmp_path, mvtec_root, "all", synth={"n_train": 4}))
    cfg = load_pipeline_yaml(_pipeline(tmp_path, mvtec_root / "bottle", "all"))
    with pytest.raises(InputError, match="is one category folder"):
        resolve_categories(cfg)


def _report(out: Path, category: str) -> dict:
    return json.loads((out / category / "report" / "report.json").read_text())


def test_three_categories_one_failing_then_rerun(run_cli, mvtec_root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from defectkit.pipeline import steps

    real = steps.autoencoder_train

    def broken(cfg) -> None:
        if cfg.out.name == "bottle_b":
            raise RuntimeError("simulated out of memory")
        real(cfg)

    monkeypatch.setattr(steps, "autoencoder_train", broken)
    p = _pipeline(tmp_path, mvtec_root, "all")
    code, out, err = run_cli("run", p)
    assert code == 1, err
    assert "bottle_b: FAILED at stage autoencoder_train: RuntimeError: simulated out of memory" in out
    assert "category bottle_b: stage autoencoder_train failed" in err
    assert "1 of 3 categories failed: bottle_b" in err
    root = tmp_path / "out"
    for c in ("bottle", "tile"):  # each category has the whole single-category layout
        for sub in ("split.json", "labels/coco/test.json", "runs/classifier/best.pt", "runs/sam/best.pt", "runs/autoencoder/best.pt",
                    "report/report.html", "pipeline.json"):
            assert (root / c / sub).exists(), (c, sub)
    assert not (root / "bottle_b" / "report").exists() and (root / "bottle_b" / "runs" / "classifier").is_dir()
    table = json.loads((root / "report" / "report.json").read_text())
    assert [r["category"] for r in table["categories"]] == list(CATEGORIES)
    assert [r["status"] for r in table["categories"]] == ["ok", "failed", "ok"]
    assert table["categories"][1]["stage"] == "autoencoder_train"
    assert table["models"] == ["SAM (GT boxes)", "ResNet", "AutoEncoder"]
    reports = {c: _report(root, c) for c in ("bottle", "tile")}
    checked = 0
    for i, name in enumerate(table["models"]):
        for key, block, field in (("image_auroc", "image", "auroc"), ("accuracy", "image", "accuracy"),
                                  ("defect_f1", "image", "f1"), ("box_map50", "box", "AP50"),
                                  ("mask_iou", "mask", "iou")):
            values = [(reports[c]["models"][i][block] or {}).get(field) for c in reports]
            cell = table["mean"]["values"][name][key]
            assert cell["n"] == sum(v is not None for v in values), (name, key)
            if cell["n"] == 2:
                assert cell["mean"] == pytest.approx(np.mean(values))
                checked += 1
    assert checked >= 8  # image numbers of all three models, and SAM's mask IoU
    assert table["mean"]["values"]["SAM (GT boxes)"]["mask_iou"]["n"] == 2
    assert table["mean"]["values"]["ResNet"]["mask_iou"] == {"mean": None, "n": 0}  # no masks: N/A
    md = (root / "report" / "report.md").read_text()
    assert "| bottle_b | failed | failed | failed |" in md and "mean (2 of 3 categories)" in md
    assert "| [bottle](../bottle/report/report.md) | " in md
    html = (root / "report" / "report.html").read_text()
    assert '<a href="../tile/report/report.html">tile</a>' in html and "<td>bottle_b</td>" in html

    monkeypatch.setattr(steps, "autoencoder_train", real)
    code, out, err = run_cli("run", p)
    assert code == 0, err
    lines = dict(line.split(": ", 1) for line in out.splitlines() if line.startswith(CATEGORIES) and ": " in line)
    assert lines["bottle"] == lines["tile"] == "ran nothing; 10 skipped (up to date)"
    assert lines["bottle_b"] == "ran autoencoder_train, autoencoder_predict, eval; 7 skipped (up to date)"
    table = json.loads((root / "report" / "report.json").read_text())
    assert [r["status"] for r in table["categories"]] == ["ok"] * 3 and table["mean"]["n_ok"] == 3
    auroc = [_report(root, c)["models"][1]["image"]["auroc"] for c in CATEGORIES]
    assert table["mean"]["values"]["ResNet"]["image_auroc"]["mean"] == pytest.approx(np.mean(auroc))
    code, out, err = run_cli("run", p, "--only", "eval")  # --only applies to every category
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith(CATEGORIES) and ": " in line] == [
        f"{c}: ran eval; 0 skipped (up to date)" for c in CATEGORIES]
    code, out, err = run_cli("run", p, "--from", "sam_trian")
    assert code == 2 and out == "" and "--from sam_trian: unknown stage" in err


def test_shipped_all_categories_config_loads() -> None:
    cfg = load_pipeline_yaml(REPO / "configs" / "mvtec_all_cpu.yaml")
    single = load_pipeline_yaml(REPO / "configs" / "mvtec_cpu.yaml")
    assert cfg.categories == "all" and Path(cfg.dataset).name == "mvtec_anomaly_detection"
    for section in ("split", "yolo_world", "sam", "classifier", "autoencoder", "eval"):
        assert getattr(cfg, section) == getattr(single, section), section
    # pasted instances stay in place on every category (many MVTec parts sit in one pose)
    assert cfg.paste["placement"] == "same" and single.paste["placement"] == "rotate"


def test_a_root_without_categories_key_stops_before_any_stage(tmp_path: Path, mvtec_root: Path,
                                                              run_cli) -> None:
    """Without `categories:` a root of several categories is refused up front, pointing at the key
    (not half-way through, at split, with a message about CLI flags)."""
    code, out, err = run_cli("run", _pipeline(tmp_path, mvtec_root, None))
    assert code == 2 and out == ""
    assert (f"dataset: {mvtec_root} holds 3 categories (bottle, bottle_b, tile); add `categories: all`"
            in err)
    assert not (tmp_path / "out").exists()


def test_visa_categories_are_the_objects_of_its_csv(tmp_path: Path) -> None:
    """A folder with Data/ that the CSV does not list is not a category; a listed object whose
    folder is missing stays one (it then fails as a category instead of silently dropping out)."""
    import shutil

    from defectkit.datasets.synth import SynthConfig, generate_synthetic
    from defectkit.pipeline.multi import root_categories

    root = generate_synthetic(tmp_path / "visa", SynthConfig(n_train=3, n_test_good=1, n_test_per_defect=1,
                                                               size=32, categories=("bottle", "tile"),
                                                               layout="visa"))
    (root / "notes" / "Data").mkdir(parents=True)
    assert root_categories(root) == ("bottle", "tile")
    shutil.rmtree(root / "tile")
    assert root_categories(root) == ("bottle", "tile")
