"""Overlay drawing (pure) and `defectkit annotate overlay` (files, agreement table, errors)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from defectkit.annotate.overlay import PALETTE, class_colour, draw_overlay
from defectkit.annotate.sources import Shape, flat_name, load_ground_truth, load_predictions
from defectkit.datasets.io import read_image

NAMES = {1: "broken_large", 2: "broken_small", 3: "contamination"}


def _grey(h: int = 120, w: int = 160) -> np.ndarray:
    return np.full((h, w, 3), 100, np.uint8)


def _block(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_draw_overlay_keeps_size_and_changes_only_where_instances_are():
    img = _grey()
    gt = [Shape(1, (80, 60, 110, 90), _block(120, 160, 60, 90, 80, 110))]
    pred = [Shape(2, (20, 70, 50, 100), _block(120, 160, 70, 100, 20, 50), 0.9)]
    out = draw_overlay(img, gt, pred, NAMES, legend=False)
    assert out.shape == img.shape and out.dtype == np.uint8
    # prediction: inside the filled region the colour moved toward class 2's colour
    inside = out[90, 35].astype(int)
    expected = np.round(100 * 0.55 + np.array(class_colour(2)) * 0.45)
    assert np.abs(inside - expected).max() <= 1
    # ground truth: the outline is drawn on the mask border (the bottom edge: the prediction's
    # label sits above its box and, with some OpenCV fonts, reaches the top edge), the interior
    # keeps the image
    assert tuple(out[89, 95]) == class_colour(1) and tuple(out[75, 80]) == class_colour(1)
    assert tuple(out[75, 95]) == (100, 100, 100)
    # far from every instance and label nothing changed
    assert (out[:, 130:] == 100).all()
    assert (img == 100).all()  # input untouched


def test_draw_overlay_box_only_shapes_and_legend():
    img = _grey()
    gt = [Shape(3, (100, 80, 140, 110), None)]  # box-only GT: rectangle outline
    pred = [Shape(1, (10, 90, 30, 110), None, 0.4)]  # box-only prediction: filled box
    out = draw_overlay(img, gt, pred, NAMES)
    assert tuple(out[80, 120]) == class_colour(3)
    assert tuple(out[100, 20]) != (100, 100, 100)
    plain = draw_overlay(img, gt, pred, NAMES, legend=False)
    assert (out[:12, :40] != plain[:12, :40]).any(), "legend drawn top-left"


def test_draw_overlay_higher_score_on_top():
    img = _grey()
    m = _block(120, 160, 40, 80, 40, 80)
    low, high = Shape(1, (40, 40, 80, 80), m, 0.3), Shape(2, (40, 40, 80, 80), m, 0.9)
    a = draw_overlay(img, [], [low, high], NAMES, legend=False)
    b = draw_overlay(img, [], [high, low], NAMES, legend=False)
    assert (a == b).all(), "drawing order follows score, not list order"


def test_draw_overlay_rejects_non_rgb():
    with pytest.raises(ValueError, match="HWC uint8 RGB"):
        draw_overlay(np.zeros((10, 10), np.uint8), [], [], NAMES)


def test_palette_is_one_colour_per_class():
    assert len({class_colour(c) for c in range(1, len(PALETTE) + 1)}) == len(PALETTE)


@pytest.mark.parametrize(
    ("file_name", "name"),
    [
        ("test/broken_large/000.png", "test_broken_large_000"),
        ("a b/c.d.png", "a_b_c.d"),
        ("/x.png", "x"),
    ],
)
def test_flat_name(file_name, name):
    assert flat_name(file_name) == name


def test_overlay_cli_writes_one_png_per_image_and_agreement(
    gt_coco, outcomes, run_cli, tmp_path, tiny_dataset
):
    pred, expected = outcomes
    code, out, err = run_cli("annotate", "overlay", "--coco", gt_coco, "--pred", pred, "-o", tmp_path / "ov")
    assert code == 0, err
    coco = json.loads(Path(gt_coco).read_text())
    for img in coco["images"]:
        png = tmp_path / "ov" / f"{img['name']}.png"
        drawn, src = read_image(png), read_image(tiny_dataset / img["file_name"])
        assert drawn.shape == src.shape
    with open(tmp_path / "ov" / "agreement.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["image"]: r["status"] for r in rows} == expected
    assert [r["status"] for r in rows][:3] == ["miss"] * 3  # review order: misses first
    assert "miss=" in out and "false_positive=1" in out


def test_overlay_draws_misses_and_false_positives(gt_coco, outcomes, tmp_path, tiny_dataset):
    from defectkit.annotate.review import OverlayConfig, render_overlays

    pred, expected = outcomes
    rows = render_overlays(OverlayConfig(coco=str(gt_coco), output=str(tmp_path), pred=str(pred)))
    gt = load_ground_truth(gt_coco)
    by_name = {i.name: i for i in gt.images.values()}
    miss = next(n for n, s in expected.items() if s == "miss")
    fp = next(n for n, s in expected.items() if s == "false_positive")
    for name in (miss, fp):
        info = by_name[name]
        src = read_image(tiny_dataset / info.file_name)
        drawn = read_image(tmp_path / f"{name}.png")
        shapes = gt.shapes(info.id) or load_predictions(pred, gt)[info.id]
        region = np.zeros(src.shape[:2], bool)
        for s in shapes:
            region |= s.region(*src.shape[:2])
        ys, xs = np.nonzero(region)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        assert (drawn[box] != src[box]).any(axis=-1).mean() > 0.05, name
    assert len(rows) == len(gt.images)


def test_overlay_errors_name_the_file(gt_coco, run_cli, tmp_path):
    code, _, err = run_cli("annotate", "overlay", "--coco", tmp_path / "nope.json", "-o", tmp_path / "o")
    assert code == 2 and "nope.json: COCO ground-truth file not found" in err

    code, _, err = run_cli(
        "annotate", "overlay", "--coco", gt_coco, "--images-root", tmp_path, "-o", tmp_path / "o"
    )
    assert code == 2 and "not found under" in err and str(tmp_path) in err

    bad = tmp_path / "det.json"
    bad.write_text(json.dumps({"not": "a list"}))
    code, _, err = run_cli("annotate", "overlay", "--coco", gt_coco, "--pred", bad, "-o", tmp_path / "o")
    assert code == 2 and "det.json: expected a COCO results list" in err

    coco = json.loads(Path(gt_coco).read_text())
    wrong = [
        {
            "image_id": coco["images"][0]["id"],
            "category_id": 1,
            "bbox": [0, 0, 2, 2],
            "score": 0.9,
            "segmentation": {"size": [3, 3], "counts": "9"},
        }
    ]
    bad.write_text(json.dumps(wrong))
    code, _, err = run_cli("annotate", "overlay", "--coco", gt_coco, "--pred", bad, "-o", tmp_path / "o")
    assert code == 2 and "det.json: detection #0 mask is 3x3" in err

    code, _, err = run_cli(
        "annotate", "overlay", "--coco", gt_coco, "--score-threshold", "2", "-o", tmp_path / "o"
    )
    assert code == 2 and "--score-threshold must be in [0, 1]" in err


def test_predictions_folder_and_threshold(gt_coco, outcomes, tmp_path):
    pred, _ = outcomes
    gt = load_ground_truth(gt_coco)
    folder = load_predictions(Path(pred).parent, gt)  # a prediction folder holding detections.json
    assert sum(map(len, folder.values())) == sum(map(len, load_predictions(pred, gt).values()))
    kept = load_predictions(pred, gt, score_threshold=0.5)
    assert all(s.score >= 0.5 for v in kept.values() for s in v)
    assert sum(map(len, kept.values())) == sum(map(len, folder.values())) - 1  # the 0.1 one


def test_annotate_without_subcommand_prints_help(run_cli):
    code, out, _ = run_cli("annotate")
    assert code == 2 and all(cmd in out for cmd in ("overlay", "gallery", "prompts", "auto"))
