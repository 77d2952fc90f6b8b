"""SAM data: COCO masks, boxes, preprocessing, prompt jitter and point sampling."""

from __future__ import annotations

import numpy as np
import pytest

from defectkit.errors import InputError
from defectkit.fileio import atomic_write_json
from defectkit.finetune.sam.data import (
    SamSample,
    ann_to_mask,
    dihedral,
    input_shape,
    jitter_boxes,
    load_coco_samples,
    mask_to_box,
    masks_to_lowres,
    preprocess_image,
    sample_points,
    transform_sample,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/finetune/conftest.py


def _block(h=40, w=60, y0=10, y1=20, x0=5, x1=25) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def _rle(m: np.ndarray, as_str: bool = True) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    if as_str:
        rle["counts"] = rle["counts"].decode("ascii")
    return rle


@pytest.mark.parametrize(
    "seg",
    [
        pytest.param({"kind": "polygon"}, id="edge-polygon"),
        pytest.param({"kind": "rle-str"}, id="compressed-rle-str"),
        pytest.param({"kind": "rle-bytes"}, id="compressed-rle-bytes"),
    ],
)
def test_ann_to_mask_reads_polygons_and_rle(seg):
    m = _block()
    segmentation = {
        "polygon": [[5, 10, 25, 10, 25, 20, 5, 20]],  # traces pixel edges: re-rasterises exactly
        "rle-str": _rle(m),
        "rle-bytes": _rle(m, as_str=False),
    }[seg["kind"]]
    assert np.array_equal(ann_to_mask({"segmentation": segmentation}, 40, 60), m)


def test_mask_to_box_uses_pixel_edges():
    assert mask_to_box(_block()).tolist() == [5, 10, 25, 20]
    assert mask_to_box(np.zeros((4, 4), bool)).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5])
def test_jitter_moves_sides_by_at_most_fraction_and_clips(fraction):
    rng = np.random.default_rng(0)
    boxes = np.array([[10, 10, 30, 20], [0, 0, 60, 40]], np.float32)
    for _ in range(50):
        j = jitter_boxes(boxes, fraction, 60, 40, rng)
        size = np.array([20, 10, 20, 10], np.float32)
        assert np.all(np.abs(j[0] - boxes[0]) <= fraction * size + 1e-4)
        assert np.all(j[:, [0, 2]] >= 0) and np.all(j[:, [0, 2]] <= 60)
        assert np.all(j[:, [1, 3]] >= 0) and np.all(j[:, [1, 3]] <= 40)
        assert np.all(j[:, 2] > j[:, 0]) and np.all(j[:, 3] > j[:, 1])
    if fraction == 0:
        assert np.array_equal(jitter_boxes(boxes, 0, 60, 40, rng), boxes)


def test_points_fall_inside_and_outside_the_mask():
    m = _block()[None]
    coords, labels = sample_points(m, mask_to_box(m[0])[None], 3, 2, np.random.default_rng(0))
    assert coords.shape == (1, 5, 2) and labels.tolist() == [[1, 1, 1, 0, 0]]
    for (x, y), lab in zip(coords[0], labels[0], strict=True):
        assert m[0, int(y), int(x)] == bool(lab)


def test_preprocess_resizes_longest_side_and_pads():
    image = np.full((30, 60, 3), 255, np.uint8)
    x, hw = preprocess_image(image, 128)
    assert x.shape == (1, 3, 128, 128) and hw == (64, 128) == input_shape(30, 60, 128)
    assert float(x[0, :, 70:, :].abs().max()) == 0.0  # zero padding bottom
    assert float(x[0, 0, 0, 0]) == pytest.approx((255 - 123.675) / 58.395, rel=1e-5)


def test_lowres_targets_follow_the_padded_input_frame():
    m = np.zeros((1, 30, 60), bool)
    m[0, :, :30] = True  # left half
    t = masks_to_lowres(m, image_size=128, lowres=32)
    assert t.shape == (1, 32, 32)
    assert t[0, :16, :16].min() == pytest.approx(1.0) and t[0, :, 17:].max() == 0.0
    assert t[0, 17:, :].max() == 0.0  # padding rows are background


def test_load_coco_samples_keeps_annotated_images_and_names_missing_images(tmp_path):
    import cv2

    data = tmp_path / "data"
    (data / "test" / "x").mkdir(parents=True)
    cv2.imwrite(str(data / "test" / "x" / "000.png"), np.zeros((40, 60, 3), np.uint8))
    cv2.imwrite(str(data / "test" / "x" / "001.png"), np.zeros((40, 60, 3), np.uint8))
    coco = {
        "info": {"dataset": str(data)},
        "images": [
            {
                "id": 3,
                "file_name": "test/x/000.png",
                "width": 60,
                "height": 40,
                "defect_type": "x",
                "name": "test_x_000",
            },
            {"id": 1, "file_name": "test/x/001.png", "width": 60, "height": 40},
        ],
        "annotations": [
            {"id": 1, "image_id": 3, "category_id": 2, "segmentation": _rle(_block())},
            {"id": 2, "image_id": 3, "category_id": 2, "segmentation": _rle(np.zeros((40, 60), bool))},
        ],
        "categories": [],
    }
    path = atomic_write_json(tmp_path / "train.json", coco)
    samples = load_coco_samples(path)
    assert [s.image_id for s in samples] == [3]
    s = samples[0]
    assert s.name == "test_x_000" and s.defect_type == "x" and s.boxes.tolist() == [[5, 10, 25, 20]]
    assert s.masks.shape == (1, 40, 60) and s.category_ids.tolist() == [2]
    assert len(load_coco_samples(path, with_empty=True)) == 2
    coco["images"][0]["file_name"] = "test/x/404.png"
    atomic_write_json(path, coco)
    with pytest.raises(InputError, match=r"train.json: image 'test/x/404.png' not found"):
        load_coco_samples(path)
    with pytest.raises(InputError, match="nothere.json"):
        load_coco_samples(tmp_path / "nothere.json")


def test_dihedral_transforms_are_the_eight_distinct_flips_and_transposes():
    a = np.arange(12).reshape(3, 4)
    outs = [dihedral(a, k) for k in range(8)]
    assert np.array_equal(outs[0], a)
    assert np.array_equal(outs[1], a[:, ::-1]) and np.array_equal(outs[2], a[::-1])
    assert np.array_equal(outs[4], a.T) and outs[4].shape == (4, 3)
    assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
    img = np.random.default_rng(0).integers(0, 255, (3, 4, 3), dtype=np.uint8)  # HWC: channels stay last
    assert dihedral(img, 5).shape == (4, 3, 3) and np.array_equal(
        dihedral(img, 5)[..., 1], dihedral(img[..., 1], 5)
    )


@pytest.mark.parametrize("k", range(8))
def test_transform_sample_moves_masks_and_boxes_with_the_image(k):
    h, w = 40, 60
    masks = np.stack([_block(h, w), _block(h, w, 25, 38, 40, 59)])
    image = np.zeros((h, w, 3), np.uint8)
    image[masks[0]] = 200  # the pixels of instance 0 are marked in the image
    s = SamSample(
        7, "x", "img.png", w, h, "d", np.stack([mask_to_box(m) for m in masks]), masks, np.array([1, 2])
    )
    t = transform_sample(s, k)
    moved = dihedral(image, k)
    assert (t.height, t.width) == moved.shape[:2] == t.masks.shape[1:]
    assert np.array_equal(moved[..., 0] == 200, t.masks[0])  # image and mask moved alike
    assert all(np.array_equal(b, mask_to_box(m)) for b, m in zip(t.boxes, t.masks, strict=True))
    assert t.aug == k and t.masks.sum() == masks.sum() and s.aug == 0
    if k:
        with pytest.raises(ValueError, match="already transformed"):
            transform_sample(t, 1)
