"""SAM prompts from masks: box convention, interior point, sampled points, the CLI file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectkit.annotate.prompts import interior_point, mask_box, mask_prompt


def _mask() -> np.ndarray:
    m = np.zeros((30, 40), bool)
    m[10:20, 10:20] = True  # 10x10 block: COCO bbox [10, 10, 10, 10]
    m[10:12, 20:30] = True  # thin arm to the right
    return m


def test_mask_box_uses_pixel_edges():
    assert mask_box(_mask()) == [10.0, 10.0, 30.0, 20.0]
    with pytest.raises(ValueError, match="empty"):
        mask_box(np.zeros((3, 3), bool))


def test_interior_point_is_the_centre_of_the_thick_part():
    x, y = interior_point(_mask())
    assert 13 <= x <= 16 and 13 <= y <= 16
    edge = np.ones((5, 5), bool)  # a mask touching the image border: the border counts as outside
    assert interior_point(edge) == (2, 2)


def test_mask_prompt_points_and_labels():
    m = _mask()
    p = mask_prompt(m, 4, 3, np.random.default_rng(0))
    assert p["point_labels"] == [1, 1, 1, 1, 0, 0, 0]
    pts = np.array(p["points"])
    assert len(np.unique(pts, axis=0)) == len(pts)
    cols, rows = (pts[:, 0] - 0.5).astype(int), (pts[:, 1] - 0.5).astype(int)
    assert m[rows[:4], cols[:4]].all(), "foreground points lie in the mask (pixel centres)"
    assert not m[rows[4:], cols[4:]].any(), "background points lie outside it"
    x0, y0, x1, y1 = p["box"]
    assert ((cols[4:] >= x0) & (cols[4:] < x1) & (rows[4:] >= y0) & (rows[4:] < y1)).all()
    assert p == mask_prompt(m, 4, 3, np.random.default_rng(0)), "same seed, same prompt"


def test_mask_prompt_small_masks_and_full_box():
    one = np.zeros((8, 8), bool)
    one[3, 4] = True
    p = mask_prompt(one, 5, 2, np.random.default_rng(1))
    assert p["points"][0] == [4.5, 3.5] and p["point_labels"].count(1) == 1  # no more pixels to pick
    assert p["point_labels"].count(0) == 2  # box is full: negatives come from anywhere outside
    assert mask_prompt(one, 0, 0, np.random.default_rng(1))["points"] == []


def test_prompts_cli_boxes_match_coco_boxes(gt_coco, run_cli, tmp_path):
    out = tmp_path / "prompts.json"
    code, stdout, err = run_cli(
        "annotate",
        "prompts",
        "--coco",
        gt_coco,
        "-o",
        out,
        "--points",
        "3",
        "--negative-points",
        "1",
        "--seed",
        "5",
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    coco = json.loads(gt_coco.read_text())
    boxes = {a["id"]: a["bbox"] for a in coco["annotations"]}
    prompts = [p for img in doc["images"] for p in img["prompts"]]
    assert len(prompts) == len(coco["annotations"]) == doc["info"]["n_prompts"]
    assert f"{len(prompts)} prompts" in stdout
    for p in prompts:
        x, y, w, h = boxes[p["annotation_id"]]
        assert p["box"] == [x, y, x + w, y + h]
        assert p["point_labels"][0] == 1
    assert [i["id"] for i in doc["images"]] == sorted(i["id"] for i in coco["images"])
    code, _, _ = run_cli(
        "annotate",
        "prompts",
        "--coco",
        gt_coco,
        "-o",
        tmp_path / "again.json",
        "--points",
        "3",
        "--negative-points",
        "1",
        "--seed",
        "5",
    )
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["images"] == doc["images"], "reproducible for a given seed"


def test_prompts_cli_rejects_bad_counts(gt_coco, run_cli, tmp_path):
    code, _, err = run_cli(
        "annotate", "prompts", "--coco", gt_coco, "-o", tmp_path / "p.json", "--points", "-1"
    )
    assert code == 2 and "--points must be in [0, 64]" in err
    assert not (tmp_path / "p.json").exists()
