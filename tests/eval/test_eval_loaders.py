"""Loaders refuse bad prediction files with a message naming the file and the problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from defectkit.errors import InputError
from defectkit.eval.loaders import (
    discover_predictions,
    load_anomaly_map,
    load_coco_labels,
    load_detections,
    load_image_scores,
    load_prediction_folder,
)


def _dets(tmp_path: Path, dets) -> Path:
    p = tmp_path / "detections.json"
    p.write_text(json.dumps(dets))
    return p


def _first_test(manifest):
    pos, e = next((i, e) for i, e in enumerate(manifest.entries) if e.split == "test")
    return pos + 1, e


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_id": 10_000}, "image_id 10000 is not in the split manifest"),
        ({"score": "high"}, "score must be a finite number"),
        ({"bbox": [50, 50, 30, 30]}, "lies outside image"),
        ({"bbox": [-5, 0, 10, 10]}, "lies outside image"),
        ({"bbox": [1, 2, 3]}, "bbox must be"),
        ({"category_id": "broken"}, "category_id must be an integer"),
        ({"segmentation": {"size": [10, 10], "counts": "x"}}, "segmentation must be an RLE of size [64, 64]"),
    ],
)
def test_bad_detections_are_refused(eval_manifest, tmp_path, change, message):
    img_id, _ = _first_test(eval_manifest)
    good = {"image_id": img_id, "category_id": 1, "bbox": [1, 1, 10, 10], "score": 0.5}
    path = _dets(tmp_path, [good, {**good, **change}])
    with pytest.raises(InputError) as err:
        load_detections(path, eval_manifest)
    assert str(path) in str(err.value) and "entry 1" in str(err.value) and message in str(err.value)


def test_nan_in_detections_is_refused_with_its_line(eval_manifest, tmp_path):
    img_id, _ = _first_test(eval_manifest)
    good = {"image_id": img_id, "category_id": 1, "bbox": [1, 1, 10, 10], "score": 0.5}
    path = tmp_path / "detections.json"
    path.write_text(json.dumps([good, {**good, "score": float("nan")}], indent=1))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "NaN" in text)
    with pytest.raises(InputError, match=rf"detections\.json: line {line}: NaN is not a number JSON allows"):
        load_detections(path, eval_manifest)


def test_a_box_touching_the_border_is_fine(eval_manifest, tmp_path):
    img_id, e = _first_test(eval_manifest)
    path = _dets(
        tmp_path,
        [{"image_id": img_id, "category_id": 1, "bbox": [0, 0, e.width + 0.4, e.height], "score": 1}],
    )
    assert len(load_detections(path, eval_manifest)) == 1


def _csv(tmp_path, manifest, rows=None, header="image,split,defect_type,label,score"):
    if rows is None:
        rows = [
            f"{e.name},{e.split},{e.defect_type},{e.label},0.5"
            for e in manifest.entries
            if e.split != "train"
        ]
    p = tmp_path / "image_scores.csv"
    p.write_text(header + "\n" + "\n".join(rows) + "\n")
    return p


def test_scores_csv_round_trip(eval_manifest, tmp_path):
    scores = load_image_scores(_csv(tmp_path, eval_manifest), eval_manifest, ("val", "test"))
    assert set(scores) == {e.name for e in eval_manifest.entries if e.split != "train"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: rows[:-1], "1 image(s) of the val split have no score"),
        (lambda rows: [rows[0].replace(",0.5", ",nan"), *rows[1:]], "line 2: score of"),
        (lambda rows: [rows[0].replace(",0.5", ",inf"), *rows[1:]], "(must be finite)"),
        (lambda rows: [rows[0].replace(",0.5", ",abc"), *rows[1:]], "is not a number"),
        (
            lambda rows: [*rows, "test_nope_000,test,nope,1,0.3"],
            "'test_nope_000' is not in the split manifest",
        ),
        (lambda rows: [*rows, rows[0]], "listed twice"),
    ],
)
def test_bad_scores_csv_is_refused(eval_manifest, tmp_path, edit, message):
    rows = [
        f"{e.name},{e.split},{e.defect_type},{e.label},0.5"
        for e in eval_manifest.entries
        if e.split != "train"
    ]
    path = _csv(tmp_path, eval_manifest, edit(rows))
    with pytest.raises(InputError) as err:
        load_image_scores(path, eval_manifest, ("val", "test"))
    assert str(path) in str(err.value) and message in str(err.value)


def test_csv_label_disagreeing_with_manifest(eval_manifest, tmp_path):
    e = next(e for e in eval_manifest.entries if e.split == "test" and e.label == 1)
    rows = [
        f"{x.name},{x.split},{x.defect_type},{0 if x is e else x.label},0.5"
        for x in eval_manifest.entries
        if x.split != "train"
    ]
    with pytest.raises(InputError, match=f"label '0' of {e.name} disagrees"):
        load_image_scores(_csv(tmp_path, eval_manifest, rows), eval_manifest, ("test",))


def test_csv_missing_columns(eval_manifest, tmp_path):
    with pytest.raises(InputError, match=r"missing column\(s\) \['score'\]"):
        load_image_scores(
            _csv(tmp_path, eval_manifest, [], header="image,split,defect_type,label,prob"),
            eval_manifest,
            ("test",),
        )


def test_coco_labels_must_match_the_manifest(eval_manifest, eval_labels, tmp_path):
    gt = load_coco_labels(eval_labels, "test", eval_manifest)
    assert len(gt["images"]) == len(eval_manifest.subset("test"))
    bad = json.loads((eval_labels / "coco" / "test.json").read_text())
    bad["images"][0]["id"] += 1000
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "test.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match="the split manifest gives"):
        load_coco_labels(tmp_path, "test", eval_manifest)
    bad["images"] = bad["images"][1:]
    (tmp_path / "coco" / "test.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match="images differ from the manifest's test split"):
        load_coco_labels(tmp_path, "test", eval_manifest)
    with pytest.raises(InputError, match="val.json: COCO labels not found"):
        load_coco_labels(tmp_path, "val", eval_manifest)


def test_anomaly_map_checks(eval_manifest, tmp_path):
    _, e = _first_test(eval_manifest)
    np.save(tmp_path / f"{e.name}.npy", np.zeros((3, 3), np.float32))
    with pytest.raises(InputError, match=r"shape \(3, 3\), expected"):
        load_anomaly_map(tmp_path, e)
    bad = np.zeros((e.height, e.width), np.float32)
    bad[0, 0] = np.nan
    np.save(tmp_path / f"{e.name}.npy", bad)
    with pytest.raises(InputError, match="NaN or infinite"):
        load_anomaly_map(tmp_path, e)
    (tmp_path / f"{e.name}.npy").unlink()
    from PIL import Image

    Image.fromarray(np.full((e.height, e.width), 65535, np.uint16)).save(tmp_path / f"{e.name}.png")
    assert load_anomaly_map(tmp_path, e).max() == pytest.approx(1.0)
    (tmp_path / f"{e.name}.png").unlink()
    with pytest.raises(InputError, match=f"no anomaly map for {e.name}"):
        load_anomaly_map(tmp_path, e)


def test_prediction_folder_checks(eval_manifest, eval_preds, tmp_path):
    pred = load_prediction_folder("r", eval_preds["resnet"], eval_manifest)
    assert pred.kind == "classifier" and pred.detections is None and len(pred.scores) > 0
    copy = shutil.copytree(eval_preds["yolo"], tmp_path / "yolo")
    (copy / "detections.json").unlink()
    with pytest.raises(InputError, match="detections.json: missing"):
        load_prediction_folder("y", copy, eval_manifest)
    (copy / "prediction_meta.json").write_text(json.dumps({"kind": "magic"}))
    with pytest.raises(InputError, match="kind 'magic' is not one of"):
        load_prediction_folder("y", copy, eval_manifest)
    with pytest.raises(InputError, match="not a folder"):
        load_prediction_folder("z", tmp_path / "nope", eval_manifest)


def test_discover_predictions_names_and_dedupes(eval_preds, tmp_path):
    found = dict(discover_predictions([eval_preds["ae"].parent]))
    assert sorted(found) == ["ae", "perfect-sam", "resnet", "yolo"]
    run = tmp_path / "run2" / "predictions"
    shutil.copytree(eval_preds["ae"], run)
    names = [n for n, _ in discover_predictions([eval_preds["ae"].parent, tmp_path / "run2"])]
    assert len(set(names)) == 5 and "ae (run2/predictions)" in names


def test_discover_skips_files_and_folders_without_predictions(eval_preds, tmp_path):
    (tmp_path / "split.json").write_text("{}")
    (tmp_path / "labels").mkdir()
    runs = [tmp_path / "split.json", tmp_path / "labels", eval_preds["resnet"]]
    assert [n for n, _ in discover_predictions(runs)] == ["resnet"]
    with pytest.raises(InputError, match="no such folder"):
        discover_predictions([tmp_path / "missing"])
