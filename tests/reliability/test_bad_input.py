"""Issue 16, classes 1, 4 and 8, through the CLI: every hostile input ends in exit code 2 and one line
naming the file and the problem, no traceback, inputs unchanged, no partial output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_helpers import (
    eval_argv,
    one_line_error,
    tree_digest,
    write_scores,
)

NOT_UTF8 = b'{"a": "caf\xe9"}\n'


@pytest.mark.parametrize(
    "case",
    [
        "split-manifest",
        "config-yaml",
        "pipeline-yaml",
        "boxes-json",
        "image-scores",
        "coco-labels",
        "detections",
    ],
)
def test_non_utf8_file_is_one_clear_line(case, data, split, labels, tmp_path, run_cli) -> None:
    bad = tmp_path / "bad"
    if case == "split-manifest":
        bad = tmp_path / "split.json"
        argv = ["convert", data, "--split", bad, "--to", "coco", "-o", tmp_path / "out"]
    elif case == "config-yaml":
        bad = tmp_path / "cls.yaml"
        argv = ["finetune", "classifier", "--config", bad, "--split", split, "-o", tmp_path / "out"]
    elif case == "pipeline-yaml":
        bad = tmp_path / "PIPELINE.yaml"
        argv = ["run", bad]
    elif case == "boxes-json":
        bad = tmp_path / "boxes.json"
        argv = [
            "annotate",
            "auto",
            "--images",
            data,
            "--boxes",
            bad,
            "--sam",
            tmp_path / "sam.pt",
            "-o",
            tmp_path / "o",
        ]
    else:
        pred = write_scores(tmp_path / "pred", split)
        lab = tmp_path / "labels"
        shutil.copytree(labels, lab)
        bad = {
            "image-scores": pred / "image_scores.csv",
            "coco-labels": lab / "coco" / "test.json",
            "detections": pred / "detections.json",
        }[case]
        argv = eval_argv(split, lab, tmp_path / "report", m=pred)
    bad.write_bytes(NOT_UTF8)
    code, _, err = run_cli(*argv)
    one_line_error(code, err, str(bad), "not UTF-8")
    assert bad.read_bytes() == NOT_UTF8
    assert not (tmp_path / "report").exists() and not (tmp_path / "out").exists()


def test_yolo_data_yaml_is_read_before_ultralytics(tmp_path, run_cli) -> None:
    bad = tmp_path / "data.yaml"
    bad.write_bytes(NOT_UTF8)
    code, _, err = run_cli(
        "finetune", "yolo-world", "--data", bad, "--model", "yolov8n.yaml", "-o", tmp_path / "r"
    )
    one_line_error(code, err, str(bad), "not UTF-8")
    assert not (tmp_path / "r").exists()


def test_pipeline_sections_must_be_mappings(tmp_path: Path, run_cli) -> None:
    cases = {
        "scalar.yaml": ("output: o\ndataset: d\nclassifier: 5\n", "section 'classifier' must be a mapping"),
        "empty.yaml": ("", "pipeline file is empty"),
        "no_output.yaml": ("dataset: d\n", "missing key(s) ['output']"),
        "bad_yaml.yaml": ("output: [o\n", "not valid YAML"),
        "list.yaml": ("- a\n", "expected a mapping of sections"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        code, _, err = run_cli("run", tmp_path / name)
        one_line_error(code, err, name, message)


def test_output_paths_that_cannot_be_written(data: Path, tmp_path: Path, run_cli) -> None:
    (tmp_path / "folder").mkdir()
    code, _, err = run_cli("split", data, "-o", tmp_path / "folder")
    one_line_error(code, err, "folder", "is a folder")
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli("split", data, "-o", tmp_path / "file" / "split.json")
    one_line_error(code, err, "file", "exists and is not a folder")
    code, _, err = run_cli("split", data, "-o", "/proc/split.json")
    one_line_error(code, err, "/proc/split.json", "cannot write here")
    (tmp_path / "P.yaml").write_text(f"output: {tmp_path / 'file' / 'out'}\ndataset: {data}\n")
    code, _, err = run_cli("run", tmp_path / "P.yaml")
    one_line_error(code, err, "file", "not a folder")
    assert (tmp_path / "file").read_text() == "x"


def test_duplicate_stems_are_refused_by_every_reader(data_copy, split, tmp_path, run_cli) -> None:
    from PIL import Image

    Image.open(data_copy / "test" / "good" / "000.png").convert("RGB").save(
        data_copy / "test" / "good" / "000.jpg"
    )
    before = tree_digest(data_copy)
    for argv in (
        ["describe", data_copy],
        ["split", data_copy, "-o", tmp_path / "s.json"],
    ):
        code, _, err = run_cli(*argv)
        one_line_error(code, err, "000.", "same name stem as 000.", "rename or remove one")
    assert not (tmp_path / "s.json").exists()
    assert tree_digest(data_copy) == before


def test_hand_duplicated_manifest_entry_is_refused(data, split, tmp_path, run_cli) -> None:
    raw = json.loads(split.read_text())
    raw["images"].append(raw["images"][-1])
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps(raw))
    code, _, err = run_cli("convert", data, "--split", dup, "--to", "coco", "-o", tmp_path / "out")
    one_line_error(code, err, str(dup), "listed more than once")
    assert not (tmp_path / "out").exists()


def test_coco_labels_listing_an_image_twice_are_refused(split, labels, tmp_path, run_cli) -> None:
    lab = Path(shutil.copytree(labels, tmp_path / "labels"))
    test_json = lab / "coco" / "test.json"
    coco = json.loads(test_json.read_text())
    coco["images"].append(coco["images"][0])
    test_json.write_text(json.dumps(coco))
    pred = write_scores(tmp_path / "m", split)
    code, _, err = run_cli(*eval_argv(split, lab, tmp_path / "r", m=pred))
    one_line_error(code, err, str(test_json), "listed more than once")


def test_zero_one_masks_read_as_binary(data, data_copy, tmp_path, run_cli) -> None:
    import numpy as np
    from PIL import Image

    masks = sorted((data_copy / "ground_truth").rglob("*.png"))
    for m in masks:
        Image.fromarray((np.asarray(Image.open(m)) > 127).astype(np.uint8)).save(m)
    code, out, err = run_cli("describe", data_copy)
    assert code == 0 and f"{len(masks)} mask(s) hold values 0/1 instead of 0/255" in err
    assert "empty mask" not in err
    coco = {}
    for name, ds in (("orig", data), ("zero_one", data_copy)):
        assert run_cli("split", ds, "-o", tmp_path / f"{name}.json")[0] == 0
        code, _, err = run_cli(
            "convert", ds, "--split", tmp_path / f"{name}.json", "--to", "coco", "-o", tmp_path / name
        )
        assert code == 0 and "not binary" not in err, err
        coco[name] = json.loads((tmp_path / name / "coco" / "test.json").read_text())["annotations"]
    assert coco["orig"] and [a["area"] for a in coco["zero_one"]] == [a["area"] for a in coco["orig"]]


def test_true_is_not_a_number(split, tmp_path, run_cli) -> None:
    (tmp_path / "ae.yaml").write_text("epochs: true\n")
    code, _, err = run_cli(
        "finetune", "autoencoder", "--config", tmp_path / "ae.yaml", "--split", split, "-o", tmp_path / "r"
    )
    one_line_error(code, err, "ae.yaml", "epochs: expected a number, got true")
    (tmp_path / "P.yaml").write_text("output: o\ndataset: d\nsplit: {val_fraction: true}\n")
    code, _, err = run_cli("run", tmp_path / "P.yaml")
    one_line_error(code, err, "P.yaml", "val_fraction: expected a number, got true")
    assert not (tmp_path / "r").exists()


def test_nan_score_is_refused_by_overlay(labels, tmp_path, run_cli) -> None:
    gt = labels / "coco" / "test.json"
    image_id = json.loads(gt.read_text())["images"][0]["id"]
    det = tmp_path / "detections.json"
    det.write_text(f'[{{"image_id": {image_id}, "category_id": 1, "bbox": [1, 1, 4, 4], "score": NaN}}]')
    code, _, err = run_cli("annotate", "overlay", "--coco", gt, "--pred", det, "-o", tmp_path / "ov")
    one_line_error(code, err, str(det), "line 1: NaN is not a number")
    assert not (tmp_path / "ov").exists()


def test_unknown_category_on_val_is_refused(split, labels, tmp_path, run_cli) -> None:
    from defectkit.datasets.split import load_split
    from defectkit.eval.loaders import global_ids

    manifest = load_split(split)
    ids = global_ids(manifest)
    val = next(e for e in manifest.subset("val"))
    pred = tmp_path / "det"
    pred.mkdir()
    det = {"image_id": ids[val.name], "category_id": 99, "bbox": [1, 1, 4, 4], "score": 0.5}
    (pred / "detections.json").write_text(json.dumps([det]))
    (pred / "prediction_meta.json").write_text(json.dumps({"kind": "detector"}))
    code, _, err = run_cli(*eval_argv(split, labels, tmp_path / "r", d=pred))
    one_line_error(code, err, "detections.json", "category_id [99]")
    assert not (tmp_path / "r" / "report.json").exists()


def test_describe_a_file(split, run_cli) -> None:
    code, _, err = run_cli("describe", split)
    one_line_error(code, err, str(split), "is a file; give the dataset (category) folder")


def test_unreadable_image_does_not_orphan_its_mask(data_copy, run_cli) -> None:
    bad = next((data_copy / "test" / "broken_large").iterdir())
    bad.write_bytes(b"not an image")
    code, _, err = run_cli("describe", data_copy)
    one_line_error(code, err, str(bad), "cannot decode image")
    assert "mask without a matching image" not in err


def test_random_bytes_as_anomaly_map(split, labels, tmp_path, run_cli) -> None:
    from defectkit.datasets.split import load_split

    pred = write_scores(tmp_path / "ae", split)
    (pred / "prediction_meta.json").write_text(json.dumps({"kind": "anomaly"}))
    maps = pred / "anomaly_maps"
    maps.mkdir()
    for e in load_split(split).entries:
        (maps / f"{e.name}.npy").write_bytes(os.urandom(64))
    code, _, err = run_cli(*eval_argv(split, labels, tmp_path / "r", ae=pred))
    one_line_error(code, err, ".npy", "not a NumPy .npy array file")
    assert "pickled" not in err


def test_missing_weights_is_reported_before_torch_is_imported(split, tmp_path) -> None:
    out = str(tmp_path / "p")
    argvs = [
        ["predict", "classifier", "--weights", "nope.pt", "--split", str(split), "-o", out],
        ["predict", "sam", "--weights", "nope.pt", "--split", str(split), "--labels", "x", "-o", out],
        ["finetune", "classifier", "--weights", "nope.pt", "--split", str(split), "-o", out],
    ]
    script = (
        "import sys; from defectkit.cli import main\n"
        f"codes = [main(a) for a in {argvs!r}]\n"
        "print(codes, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[2, 2, 2] False", done.stderr
    assert done.stderr.count("nope.pt") == 3 and "not found" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "p").exists()


def test_bad_eval_output_is_found_before_the_work(split, labels, tmp_path, run_cli) -> None:
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(*eval_argv(split, labels, tmp_path / "file" / "r", m=tmp_path / "nowhere"))
    one_line_error(code, err, "file", "cannot create output folder")  # not the missing prediction folder
