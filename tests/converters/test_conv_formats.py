"""Pure format builders and readers: COCO, YOLO, VOC, data.yaml, the annotate entry points."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from defectkit.converters import (
    coco_categories,
    coco_masks,
    coco_to_yolo_lines,
    data_yaml,
    instances_to_coco_annotations,
    load_coco,
    mask_to_instances,
    masks_to_coco,
    masks_to_yolo_lines,
    natural_name,
    parse_voc_boxes,
    parse_yolo_lines,
    voc_xml,
    yolo_segment_to_coco,
)
from defectkit.errors import InputError


def _blob_mask(h: int = 40, w: int = 60) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[5:15, 10:30] = True  # box component
    yy, xx = np.mgrid[:h, :w]
    m |= (yy - 28) ** 2 + (xx - 45) ** 2 <= 36  # disk component
    m[30, 5] = True  # speck
    return m


def test_categories_are_sorted_one_based_with_supercategory() -> None:
    assert coco_categories(["contamination", "broken_large"]) == [
        {"id": 1, "name": "broken_large", "supercategory": "defect"},
        {"id": 2, "name": "contamination", "supercategory": "defect"},
    ]
    assert coco_categories(["a", "b"], single_class=True) == [
        {"id": 1, "name": "defect", "supercategory": "defect"}
    ]


@pytest.mark.parametrize(("segm", "kind"), [("polygon", list), ("rle", dict)])
def test_coco_annotations_fields(segm: str, kind: type) -> None:
    insts, dropped = mask_to_instances(_blob_mask(), min_area=5)
    assert dropped == 1 and len(insts) == 2
    anns = instances_to_coco_annotations(insts, image_id=7, category_id=2, first_id=3, segm=segm)
    assert [a["id"] for a in anns] == [3, 4]
    assert anns[0]["bbox"] == [10, 5, 20, 10] and anns[0]["area"] == 200
    assert all(a["iscrowd"] == 0 and a["image_id"] == 7 and a["category_id"] == 2 for a in anns)
    assert all(isinstance(a["segmentation"], kind) for a in anns)
    json.dumps(anns)  # JSON-ready (RLE counts are str)


def test_instance_with_hole_is_written_as_rle_even_in_polygon_mode() -> None:
    m = np.zeros((20, 20), dtype=bool)
    m[2:12, 2:12] = True
    m[6, 6] = False
    anns = instances_to_coco_annotations(mask_to_instances(m)[0], image_id=1, category_id=1, first_id=1)
    assert isinstance(anns[0]["segmentation"], dict) and anns[0]["iscrowd"] == 0 and anns[0]["area"] == 99
    assert isinstance(anns[0]["segmentation"]["counts"], str)


def test_yolo_lines_detect_and_segment() -> None:
    m = np.zeros((50, 100), dtype=bool)
    m[10:20, 20:40] = True
    insts, _ = mask_to_instances(m)
    det = masks_to_yolo_lines([(3, m, None)], 100, 50, task="detect")
    assert det == "2 0.3 0.3 0.2 0.2\n"
    seg = parse_yolo_lines(masks_to_yolo_lines([(3, m, 0.9)], 100, 50))
    assert len(seg) == 1 and seg[0][0] == 2
    # the block's boundary pixels 20..39 x 10..19, each corner written 1/64 px inside its pixel
    e = 1 / 64
    corners = [[20 + e, 10 + e], [20 + e, 20 - e], [40 - e, 20 - e], [40 - e, 10 + e]]
    assert np.allclose(seg[0][1].reshape(-1, 2) * (100, 50), corners, atol=1e-3)
    pixels = (seg[0][1].reshape(-1, 2) * (100, 50)).astype(np.int32)
    assert pixels.tolist() == [[20, 10], [20, 19], [39, 19], [39, 10]]
    assert masks_to_yolo_lines([], 100, 50) == ""


def test_coco_to_yolo_to_coco_keeps_boxes_within_one_pixel() -> None:
    m = _blob_mask()
    anns = instances_to_coco_annotations(mask_to_instances(m)[0], image_id=1, category_id=1, first_id=1)
    for task in ("segment", "detect"):
        back = yolo_segment_to_coco(
            coco_to_yolo_lines(anns, 60, 40, task=task), width=60, height=40, image_id=1
        )
        assert len(back) == len(anns)
        for a, b in zip(anns, back, strict=True):
            assert b["category_id"] == a["category_id"]
            assert np.abs(np.subtract(a["bbox"], b["bbox"])).max() <= 1.0
            if task == "segment":  # a detect row can only give back the box area
                assert b["area"] == a["area"]


def test_rle_annotation_with_a_hole_goes_to_yolo_with_its_hole() -> None:
    m = np.zeros((20, 20), dtype=bool)
    m[2:12, 2:12] = True
    m[6, 6] = False
    anns = instances_to_coco_annotations(mask_to_instances(m)[0], image_id=1, category_id=2, first_id=1)
    rows = parse_yolo_lines(coco_to_yolo_lines(anns, 20, 20))
    assert len(rows) == 1 and rows[0][0] == 1
    # one row: the outline and the hole joined by a zero-width cut; ultralytics reads the hole back
    from defectkit.converters.centre_polygons import fillpoly_raster

    assert np.array_equal(fillpoly_raster([rows[0][1].reshape(-1, 2) * 20], 20, 20), m)


@pytest.mark.parametrize("bad", ["0 0.1 0.2", "x 0.1 0.2 0.3 0.4", "0 0.1 0.2 0.3 0.4 0.5 0.6 0.7"])
def test_parse_yolo_rejects_malformed_rows(bad: str) -> None:
    with pytest.raises(ValueError, match="line 1"):
        parse_yolo_lines(bad)


def test_voc_round_trip_uses_one_based_inclusive_boxes() -> None:
    xml = voc_xml(
        filename="000.png",
        path="/d/000.png",
        width=60,
        height=40,
        depth=3,
        objects=[("broken_large", (10, 5, 30, 15))],
    )
    assert "<xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>15</ymax>" in xml
    assert parse_voc_boxes(xml) == [("broken_large", (10, 5, 30, 15))]


def test_data_yaml_parses_with_names_and_absolute_path() -> None:
    text = data_yaml("/abs/yolo", {0: "broken glass", 1: "dirt: stain"})
    data = yaml.safe_load(text)
    assert data == {
        "path": "/abs/yolo",
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "nc": 2,
        "names": {0: "broken glass", 1: "dirt: stain"},
    }
    assert natural_name("broken_large") == "broken large"


def test_masks_to_coco_for_pseudo_labels_and_back_to_masks() -> None:
    m = _blob_mask()
    records = [
        ({"id": 5, "file_name": "a.png", "width": 60, "height": 40}, [(1, m, 0.75)]),
        ({"id": 9, "file_name": "b.png", "width": 60, "height": 40}, []),
    ]
    coco = masks_to_coco(records, coco_categories(["broken_large"]), min_area=1)
    assert [a["score"] for a in coco["annotations"]] == [0.75] * 3
    back = coco_masks(coco)
    assert sorted(back) == [5, 9] and back[9] == []
    union = np.logical_or.reduce([mm for _, mm in back[5]])
    assert np.array_equal(union, m)
    with pytest.raises(ValueError, match="does not match"):
        masks_to_coco([({"id": 1, "file_name": "a.png", "width": 10, "height": 10}, [(1, m, None)])], [])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ('{"images": []}', "missing list 'annotations'"),
        (
            '{"images": [{"id": 1, "width": 2, "height": 2}], "categories": [{"id": 1}], '
            '"annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]}',
            "unknown image_id 2",
        ),
        (
            '{"images": [{"id": 1, "width": 2, "height": 2}], "categories": [{"id": 1}], '
            '"annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]}]}',
            "category_id 3",
        ),
        (
            '{"images": [{"id": 1, "width": 2, "height": 2}, {"id": 1, "width": 2, "height": 2}], '
            '"categories": [], "annotations": []}',
            "duplicate image id 1",
        ),
    ],
)
def test_load_coco_names_the_file_and_the_problem(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as err:
        load_coco(path)
    assert str(path) in str(err.value)


def test_non_binary_or_3d_mask_is_refused() -> None:
    with pytest.raises(ValueError, match="boolean or 0/1"):
        mask_to_instances(np.full((4, 4), 128, dtype=np.uint8))
    with pytest.raises(ValueError, match="HxW"):
        mask_to_instances(np.zeros((4, 4, 3), dtype=bool))
    assert mask_to_instances(np.zeros((4, 4), dtype=bool)) == ([], 0)
