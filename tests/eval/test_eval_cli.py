"""`defectkit eval` errors and threshold edge cases, through the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from eval_builders import dets_from_gt, write_labels, write_pred

from defectkit.datasets.split import load_split


def _args(split, labels, out, *preds, extra=()):
    return ("eval", "--split", split, "--labels", labels, "-o", out, "--bootstrap", "0", *preds, *extra)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--threshold", "max-f2"), "--threshold max-f2: unknown threshold rule"),
        (("--threshold", "good-recall=2"), "--threshold good-recall=2: good-recall needs a value in [0, 1]"),
        (("--bootstrap", "-1"), "--bootstrap must be >= 0"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    run_cli, eval_split, eval_labels, eval_preds, tmp_path, extra, message
):
    code, out, err = run_cli(
        *_args(eval_split, eval_labels, tmp_path, "--pred", f"r={eval_preds['resnet']}"), *extra
    )
    assert code == 2 and f"defectkit: error: eval: {message}" in err
    assert not (tmp_path / "report.json").exists()


def test_no_predictions_is_an_error(run_cli, eval_split, eval_labels, tmp_path):
    code, _, err = run_cli(*_args(eval_split, eval_labels, tmp_path))
    assert code == 2 and "--pred NAME=PRED_DIR or --runs RUN_DIR" in err


def test_pred_without_name_is_rejected_by_argparse(run_cli, eval_split, eval_labels, eval_preds, tmp_path):
    with pytest.raises(SystemExit) as exc:
        run_cli(*_args(eval_split, eval_labels, tmp_path, "--pred", str(eval_preds["resnet"])))
    assert exc.value.code == 2


def test_unknown_image_id_fails_without_partial_output(
    run_cli, eval_split, eval_labels, eval_preds, tmp_path
):
    bad = shutil.copytree(eval_preds["yolo"], tmp_path / "bad")
    dets = json.loads((bad / "detections.json").read_text())
    dets[0]["image_id"] = 9999
    (bad / "detections.json").write_text(json.dumps(dets))
    code, _, err = run_cli(*_args(eval_split, eval_labels, tmp_path / "rep", "--pred", f"bad={bad}"))
    assert code == 2 and f"{bad / 'detections.json'}: entry 0: image_id 9999" in err
    assert not (tmp_path / "rep").exists()


def test_unknown_category_id_is_an_error(run_cli, eval_split, eval_labels, eval_preds, tmp_path):
    bad = shutil.copytree(eval_preds["yolo"], tmp_path / "bad")
    dets = json.loads((bad / "detections.json").read_text())
    dets[0]["category_id"] = 0
    (bad / "detections.json").write_text(json.dumps(dets))
    code, _, err = run_cli(*_args(eval_split, eval_labels, tmp_path / "rep", "--pred", f"bad={bad}"))
    assert code == 2 and "category_id [0] not among the labels' categories" in err


def test_without_val_predictions_a_fixed_threshold_is_needed(
    run_cli, eval_split, eval_labels, eval_preds, tmp_path
):
    bad = shutil.copytree(eval_preds["yolo"], tmp_path / "testonly")
    meta = json.loads((bad / "prediction_meta.json").read_text())
    (bad / "prediction_meta.json").write_text(json.dumps({**meta, "splits": ["test"]}))
    code, _, err = run_cli(*_args(eval_split, eval_labels, tmp_path / "a", "--pred", f"d={bad}"))
    assert code == 2 and "no predictions for the val split" in err
    code, out, err = run_cli(
        *_args(eval_split, eval_labels, tmp_path / "b", "--pred", f"d={bad}"), "--threshold", "fixed=0.5"
    )
    assert code == 0, err
    m = json.loads((tmp_path / "b" / "report.json").read_text())["models"][0]
    assert m["threshold"] == {"rule": "fixed=0.5", "value": 0.5, "chosen_on": "fixed", "usable": True}


def test_val_with_good_images_only_falls_back_to_good_recall(run_cli, tiny_split, tmp_path):
    """The unsupervised-style val (good images only) cannot give max-F1: good-recall=0.95 is used."""
    manifest = load_split(tiny_split, verify=False)
    assert {e.label for e in manifest.subset("val")} == {0}
    labels = write_labels(manifest, tmp_path / "labels")
    pred = write_pred(
        tmp_path / "sam", "segmenter", manifest, dets=dets_from_gt(manifest, score=0.9, with_masks=True)
    )
    used = [e for e in manifest.entries if e.split != "train"]
    maps = {e.name: np.full((e.height, e.width), 0.1 + 0.5 * e.label, np.float32) for e in used}
    ae = write_pred(
        tmp_path / "ae", "anomaly", manifest, scores={n: float(m.max()) for n, m in maps.items()}, maps=maps
    )
    code, out, err = run_cli(
        *_args(tiny_split, labels, tmp_path / "rep", "--pred", f"sam={pred}", "--pred", f"ae={ae}")
    )
    assert code == 0, err
    sam, ae_report = json.loads((tmp_path / "rep" / "report.json").read_text())["models"]
    thr = sam["threshold"]
    assert thr["rule"] == "good-recall=0.95" and "max-f1 impossible" in thr["note"]
    assert thr["value"] > 0.0  # all val images are good with score 0: flag anything above
    assert "max-f1 impossible" in out
    # no defect pixel in val: no pixel threshold, so thresholded-map IoU is undefined (N/A), not 0
    assert ae_report["pixel"]["threshold"] is None and ae_report["mask"]["iou"] is None
    assert ae_report["pixel"]["auroc"] is not None
    row = next(line for line in out.splitlines() if line.startswith("ae "))
    assert row.split()[9] == "N/A"
