"""End to end: `defectkit eval` on a synthetic run with four kinds of models."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics

from defectkit.eval import EvalConfig, evaluate, format_table
from defectkit.eval.report import DASH, flatten, fmt
from defectkit.eval.thresholds import max_f1_threshold


@pytest.fixture(scope="module")
def report_dir(eval_split, eval_labels, eval_preds, tmp_path_factory, run_cli_module) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report")
    code, stdout, err = run_cli_module(
        "eval",
        "--split",
        eval_split,
        "--labels",
        eval_labels,
        "-o",
        out,
        "--bootstrap",
        "50",
        *[a for name, p in eval_preds.items() for a in ("--pred", f"{name}={p}")],
    )
    assert code == 0, err
    return out, stdout


@pytest.fixture(scope="module")
def run_cli_module():
    import contextlib
    import io

    from defectkit.cli import main

    def _run(*argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
        return code, out.getvalue(), err.getvalue()

    return _run


def _report(report_dir) -> dict:
    return json.loads((report_dir[0] / "report.json").read_text())


def _model(report: dict, name: str) -> dict:
    return next(m for m in report["models"] if m["name"] == name)


def test_writes_every_file_and_prints_the_table(report_dir):
    out, stdout = report_dir
    for f in ("report.json", "report.md", "report.html", "per_image.csv", "figures/curves.png"):
        assert (out / f).is_file(), f
    assert stdout.splitlines()[0].split()[:3] == ["Model", "Type", "Accuracy"]
    for name in ("perfect-sam", "yolo", "resnet", "ae"):
        assert re.search(rf"^{name}\s", stdout, re.M)


def test_perfect_segmenter_scores_one_everywhere(report_dir):
    m = _model(_report(report_dir), "perfect-sam")
    assert m["image"]["accuracy"] == 1.0 and m["image"]["f1"] == 1.0 and m["image"]["auroc"] == 1.0
    assert m["box"]["AP"] == pytest.approx(1.0) and m["mask_coco"]["AP50"] == pytest.approx(1.0)
    assert m["mask"]["iou"] == 1.0 and m["mask"]["dice"] == 1.0 and m["mask"]["instance_recall"] == 1.0
    assert m["mask"]["good_with_mask"] == 0.0
    assert m["score_source"] == "max detection score per image"
    assert m["box"]["AP_large"] is None  # no large defects at 64 px: COCOeval's -1 -> None


def test_classifier_numbers_equal_sklearn(report_dir, eval_manifest):
    report = _report(report_dir)
    m = _model(report, "resnet")
    rows = list(csv.DictReader((Path(m["prediction_folder"]) / "image_scores.csv").open()))
    score = {r["image"]: float(r["score"]) for r in rows}
    val = eval_manifest.subset("val")
    thr = max_f1_threshold([e.label for e in val], [score[e.name] for e in val])
    assert m["threshold"]["value"] == thr and m["threshold"]["chosen_on"] == "val"
    test = eval_manifest.subset("test")
    y = np.array([e.label for e in test])
    s = np.array([score[e.name] for e in test])
    p = (s >= thr).astype(int)
    assert m["image"]["accuracy"] == pytest.approx(metrics.accuracy_score(y, p))
    assert m["image"]["auroc"] == pytest.approx(metrics.roc_auc_score(y, s))
    assert m["image"]["confusion"] == metrics.confusion_matrix(y, p).tolist()
    assert m["box"] is None and m["mask"] is None


def test_detector_miss_and_false_alarm_show(report_dir):
    m = _model(_report(report_dir), "yolo")
    assert m["box"]["AP50"] < 1.0
    assert m["mask"] is None and m["mask_coco"] is None
    reasons = {w["reason"] for w in m["worst_cases"]}
    assert "false alarm" in reasons


def test_anomaly_model_gets_pixel_metrics(report_dir):
    m = _model(_report(report_dir), "ae")
    assert 0.5 < m["pixel"]["auroc"] <= 1.0 and 0.0 < m["pixel"]["aupro"] <= 1.0
    assert m["pixel"]["threshold"] is not None and 0.0 < m["mask"]["iou"] <= 1.0


def test_report_json_carries_provenance(report_dir, eval_manifest):
    report = _report(report_dir)
    assert report["split"]["fingerprint"] == eval_manifest.fingerprint
    assert {"python", "pycocotools", "scikit-learn"} <= set(report["versions"])
    assert _model(report, "yolo")["weights"] == "/weights/yolo.pt"
    assert report["config"]["bootstrap"] == 50 and report["reference"]["rows"][1]["accuracy"] == 0.91


def test_missing_kinds_are_dashes_not_zeros(report_dir):
    stdout = report_dir[1]
    row = next(line for line in stdout.splitlines() if line.startswith("resnet"))
    assert row.split()[7:10] == [DASH, DASH, DASH]  # box mAP50, mAP50-95, mask IoU


@pytest.mark.parametrize("fname", ["report.md", "report.html"])
def test_report_contains_every_model_and_number(report_dir, fname):
    text = (report_dir[0] / fname).read_text()
    report = _report(report_dir)
    for m in report["models"]:
        assert m["name"] in text
    for path, value in flatten(report):
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and not path.startswith("versions.")
        ):
            shown = f"{value:g}" if path.startswith("reference.") else fmt(value)  # quoted as published
            assert shown in text, path


def test_html_is_self_contained(report_dir):
    html = (report_dir[0] / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)


def test_format_table_and_evaluate_api(eval_split, eval_labels, eval_preds, tmp_path):
    cfg = EvalConfig(
        split=eval_split,
        labels=eval_labels,
        output=tmp_path,
        bootstrap=0,
        reference=False,
        predictions=(("resnet", eval_preds["resnet"]),),
    )
    report = evaluate(cfg)
    table = format_table(report)
    assert table.splitlines()[0].startswith("Model") and "resnet" in table
    assert "ci" not in report["models"][0]["image"] and report["reference"] is None


def test_runs_discovery_finds_prediction_folders(
    eval_split, eval_labels, eval_preds, tmp_path, run_cli_module
):
    code, out, err = run_cli_module(
        "eval",
        "--split",
        eval_split,
        "--labels",
        eval_labels,
        "--bootstrap",
        "0",
        "--runs",
        eval_preds["resnet"].parent,
        "--threshold",
        "good-recall=0.95",
        "-o",
        tmp_path,
    )
    assert code == 0, err
    models = json.loads((tmp_path / "report.json").read_text())["models"]
    assert sorted(m["name"] for m in models) == ["ae", "perfect-sam", "resnet", "yolo"]
    assert {m["threshold"]["rule"] for m in models} == {"good-recall=0.95"}


def test_same_inputs_give_identical_reports(eval_split, eval_labels, eval_preds, tmp_path):
    reports = []
    for out in (tmp_path / "a", tmp_path / "b"):
        cfg = EvalConfig(
            split=eval_split,
            labels=eval_labels,
            output=out,
            bootstrap=20,
            seed=3,
            predictions=tuple(eval_preds.items()),
        )
        evaluate(cfg)
        report = json.loads((out / "report.json").read_text())
        report["config"].pop("output")
        reports.append((report, (out / "figures" / "curves.png").read_bytes()))
    assert reports[0] == reports[1]


def test_segmenter_csv_scores_on_another_scale_do_not_filter_masks(
    eval_split, eval_labels, eval_manifest, tmp_path
):
    from eval_builders import dets_from_gt, write_pred

    used = [e for e in eval_manifest.entries if e.split != "train"]
    pred = write_pred(
        tmp_path / "sam",
        "segmenter",
        eval_manifest,
        dets=dets_from_gt(eval_manifest, score=0.95, with_masks=True),
        scores={e.name: 10.0 + 5.0 * e.label for e in used},  # image scores far above the mask scores
    )
    cfg = EvalConfig(
        split=eval_split, labels=eval_labels, output=tmp_path / "r", bootstrap=0, predictions=(("sam", pred),)
    )
    m = evaluate(cfg)["models"][0]
    assert m["score_source"] == "image_scores.csv" and m["threshold"]["value"] == pytest.approx(12.5)
    assert m["detection_score_threshold"] < 0.95
    assert m["mask"]["iou"] == 1.0 and m["mask"]["instance_recall"] == 1.0


def test_a_report_on_synthetic_data_says_so(report_dir, eval_manifest):
    """The test data comes from `defectkit synth` (defectkit_synth.json in the dataset folder)."""
    out, _ = report_dir
    report = _report(report_dir)
    assert report["split"]["synthetic"]["generator"] == "defectkit.synth"
    md = (out / "report.md").read_text()
    assert md.splitlines()[0] == f"# Defect inspection report: {eval_manifest.category} (synthetic data)"
    assert "synthetic images from `defectkit synth` (seed 0), not MVTec AD" in md
    assert "This run is on synthetic data from `defectkit synth`: its numbers are not comparable." in md
    html = (out / "report.html").read_text()
    assert "(synthetic data)</h1>" in html and "its numbers are not comparable" in html


def test_a_report_on_real_data_has_no_synthetic_note(report_dir):
    from defectkit.eval.report import header_lines, reference_text

    report = _report(report_dir)
    report["split"]["synthetic"] = None
    lines = header_lines(report)
    assert not lines[0].endswith("(synthetic data)") and not any("synthetic" in x for x in lines)
    assert "synthetic" not in reference_text(report)
