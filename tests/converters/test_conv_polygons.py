"""Pixel-edge polygons: exact tracing, rasterisation back, and Hypothesis round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from defectkit.converters import decode_rle, mask_to_instances, rasterize_coco, rasterize_cv2
from defectkit.converters.polygons import fill_holes, trace_outer_boundary


def _shape(rows: list[str]) -> np.ndarray:
    return np.array([[c == "#" for c in r] for r in rows], dtype=bool)


CASES = {
    "single pixel": ["....", ".#..", "...."],
    "block": ["......", ".###..", ".###..", "......"],
    "diagonal pinch": ["#...", ".#..", "..#.", "#..."],
    "thin line": ["........", ".######.", "........"],
    "L shape": ["#...", "#...", "####"],
    "touches every edge": ["####", "#..#", "####"],
    "u shape": ["#.#", "#.#", "###"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_edge_polygons_rasterise_exactly(name: str) -> None:
    mask = _shape(CASES[name])
    insts, dropped = mask_to_instances(mask, min_area=1, simplify=0)
    assert dropped == 0
    h, w = mask.shape
    union = np.zeros_like(mask)
    for inst in insts:
        assert all(len(p) >= 6 and len(p) % 2 == 0 for p in inst.polygons)
        target = fill_holes(decode_rle(inst.rle))
        assert np.array_equal(rasterize_coco(inst.polygons, h, w), target)
        polys = [np.asarray(p, dtype=float).reshape(-1, 2) for p in inst.polygons]
        assert np.array_equal(rasterize_cv2(polys, h, w), target)
        union |= decode_rle(inst.rle)
    assert np.array_equal(union, mask)


def test_block_polygon_is_its_pixel_outline() -> None:
    """The 10x10 block at 10..19 traces [10,10, 20,10, 20,20, 10,20] (pixel edges, not centres)."""
    mask = np.zeros((30, 30), dtype=bool)
    mask[10:20, 10:20] = True
    assert [p.reshape(-1).tolist() for p in trace_outer_boundary(mask)] == [[10, 10, 20, 10, 20, 20, 10, 20]]


def test_diagonal_component_is_one_polygon_through_the_shared_corner() -> None:
    mask = _shape(["#..", ".#.", "..#"])
    insts, _ = mask_to_instances(mask, min_area=1, simplify=0)
    assert len(insts) == 1 and len(insts[0].polygons) == 1
    assert insts[0].area == 3 and insts[0].bbox_xywh == (0, 0, 3, 3)


def test_hole_is_filled_by_the_outline_and_counted() -> None:
    mask = np.ones((5, 5), dtype=bool)
    mask[2, 2] = False
    (inst,), _ = mask_to_instances(mask, min_area=1)
    assert inst.has_holes and inst.hole_pixels == 1 and inst.area == 24
    assert np.array_equal(decode_rle(inst.rle), mask)
    assert rasterize_coco(inst.polygons, 5, 5).all()


# Random masks: specks, holes, thin lines, edge-touching, empty and full come up naturally.
masks = st.one_of(
    arrays(bool, st.tuples(st.integers(1, 24), st.integers(1, 24)), elements=st.booleans()),
    st.tuples(st.integers(1, 20), st.integers(1, 20), st.booleans()).map(lambda t: np.full(t[:2], t[2])),
)
PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(masks)
def test_rle_round_trip_is_exact(mask: np.ndarray) -> None:
    insts, dropped = mask_to_instances(mask, min_area=1)
    assert dropped == 0
    union = np.zeros_like(mask)
    for inst in insts:
        m = decode_rle(inst.rle)
        assert not (union & m).any()  # components are disjoint
        union |= m
        assert inst.area == m.sum()
        ys, xs = np.nonzero(m)
        assert inst.bbox_xyxy == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert np.array_equal(union, mask)


@PROPS
@given(masks)
def test_exact_polygons_round_trip_through_both_rasterisers(mask: np.ndarray) -> None:
    h, w = mask.shape
    for inst in mask_to_instances(mask, min_area=1, simplify=0)[0]:
        target = fill_holes(decode_rle(inst.rle))
        assert len(inst.polygons) == 1 and len(inst.polygons[0]) >= 8
        assert np.array_equal(rasterize_coco(inst.polygons, h, w), target)
        poly = np.asarray(inst.polygons[0], dtype=float).reshape(-1, 2)
        assert np.array_equal(rasterize_cv2([poly], h, w), target)


@PROPS
@given(masks)
def test_simplified_polygons_change_only_boundary_slivers(mask: np.ndarray) -> None:
    """Default tolerance (0.45 px): a pixel may flip only where the outline passes next to it, and
    a polygon keeps >= 3 points (never exactly 4 coordinates)."""
    h, w = mask.shape
    for inst in mask_to_instances(mask, min_area=1)[0]:
        target = fill_holes(decode_rle(inst.rle))
        assert all(len(p) >= 6 and len(p) % 2 == 0 for p in inst.polygons)
        changed = rasterize_coco(inst.polygons, h, w) ^ target
        padded = np.pad(target, 1)
        interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & target
        far_outside = ~np.pad(target, 1)
        far_outside = (
            far_outside[:-2, 1:-1] & far_outside[2:, 1:-1] & far_outside[1:-1, :-2] & far_outside[1:-1, 2:]
        )
        assert not (changed & (interior | (far_outside & ~target))).any()
        assert changed.sum() <= max(1, 0.25 * target.sum())


@PROPS
@given(masks)
def test_default_simplification_still_rasterises_exactly(mask: np.ndarray) -> None:
    h, w = mask.shape
    for inst in mask_to_instances(mask, min_area=1)[0]:
        target = fill_holes(decode_rle(inst.rle))
        assert np.array_equal(rasterize_coco(inst.polygons, h, w), target)
        polys = [np.asarray(p, dtype=float).reshape(-1, 2) for p in inst.polygons]
        assert np.array_equal(rasterize_cv2(polys, h, w), target)


@PROPS
@given(masks)
def test_coco_to_yolo_to_coco_keeps_boxes_and_classes(mask: np.ndarray) -> None:
    from defectkit.converters import coco_to_yolo_lines, instances_to_coco_annotations, yolo_segment_to_coco

    h, w = mask.shape
    anns = instances_to_coco_annotations(
        mask_to_instances(mask, min_area=1)[0], image_id=3, category_id=2, first_id=1
    )
    back = yolo_segment_to_coco(coco_to_yolo_lines(anns, w, h), width=w, height=h, image_id=3)
    assert len(back) == len(anns)  # one outer polygon per component
    for a, b in zip(anns, back, strict=True):
        assert b["category_id"] == 2 and b["image_id"] == 3
        assert np.abs(np.subtract(a["bbox"], b["bbox"])).max() <= 1.0


def test_per_image_mode_merges_components_into_one_instance() -> None:
    mask = _shape(["##....", "##....", "....##", "....##"])
    (inst,), dropped = mask_to_instances(mask, min_area=1, per_image=True)
    assert dropped == 0 and len(inst.polygons) == 2
    assert inst.bbox_xyxy == (0, 0, 6, 4) and inst.area == 8
    assert np.array_equal(decode_rle(inst.rle), mask)
    assert np.array_equal(rasterize_coco(inst.polygons, 4, 6), mask)


YOLO_CASES = {
    **CASES,
    "ring with a hole": ["#####", "#...#", "#.#.#", "#...#", "#####"],  # a hole with an island inside
    "block with a pixel hole": ["#####", "##.##", "#####"],
    "two holes": ["#######", "#.#.#.#", "#######"],
    "thin ring": ["###", "#.#", "###"],
    "diagonal line": ["#....", ".#...", "..#..", "...#."],
    "one-pixel spur": ["#####", "..#..", "..#..", "..#.."],
    "hole touching a diagonal": ["####.", "#..##", "#.#.#", "#####"],
}


def _ultralytics_raster(text: str, h: int, w: int) -> np.ndarray:
    """Each YOLO row read as ultralytics' dataset does: denormalised in float32, polygon2mask."""
    from ultralytics.data.utils import polygon2mask

    from defectkit.converters import parse_yolo_lines

    out = np.zeros((h, w), dtype=bool)
    for _, vals in parse_yolo_lines(text):
        seg = vals.astype(np.float32).reshape(-1, 2) * np.array([w, h], dtype=np.float32)
        out |= polygon2mask((h, w), [seg.reshape(-1)]).astype(bool)
    return out


@pytest.mark.parametrize("name", sorted(YOLO_CASES))
def test_yolo_rows_are_exact_under_ultralytics_fillpoly(name: str) -> None:
    from defectkit.converters import masks_to_yolo_lines

    mask = _shape(YOLO_CASES[name])
    h, w = mask.shape
    for inst in mask_to_instances(mask, min_area=1)[0]:
        own = decode_rle(inst.rle)
        text = masks_to_yolo_lines([(1, own, None)], w, h, min_area=1)
        assert len(text.splitlines()) == len(inst.yolo_polygons)  # holes need no extra row
        assert np.array_equal(_ultralytics_raster(text, h, w), own), name
        rows = np.array([v for line in text.splitlines() for v in line.split()[1:]], float).reshape(-1, 2)
        ys, xs = np.nonzero(own)  # the box ultralytics derives is the mask's box (less 1/32 px)
        assert np.allclose(rows.min(0) * (w, h), (xs.min(), ys.min()), atol=0.02)
        assert np.allclose(rows.max(0) * (w, h), (xs.max() + 1, ys.max() + 1), atol=0.02)


@PROPS
@given(masks)
def test_yolo_rows_of_random_masks_are_exact_under_ultralytics_fillpoly(mask: np.ndarray) -> None:
    from defectkit.converters import instances_to_yolo_lines

    h, w = mask.shape
    insts = mask_to_instances(mask, min_area=1)[0]
    text = "\n".join(instances_to_yolo_lines(insts, 0, w, h))
    assert np.array_equal(_ultralytics_raster(text, h, w), mask)


def test_coco_keeps_its_edge_polygons() -> None:
    """pycocotools reads pixel edges: COCO polygons are unchanged by the YOLO centre polygons."""
    mask = _shape(CASES["block"])
    (inst,), _ = mask_to_instances(mask, min_area=1, simplify=0)
    assert inst.polygons == [[1, 1, 4, 1, 4, 3, 1, 3]]
    assert inst.yolo_polygons == [[1, 1, 1, 2, 3, 2, 3, 1]]


def test_yolo_rows_survive_ultralytics_resampling() -> None:
    """ultralytics' dataset resamples each row to >= 1000 points along its edges before drawing it;
    on 45-degree edges the vertices make the inside coordinate lead, so those points stay on or
    inside the mask (without that: mean 0.993 on these blobs)."""
    import cv2
    from ultralytics.data.utils import polygon2mask
    from ultralytics.utils.ops import resample_segments

    from defectkit.converters import instances_to_yolo_lines, parse_yolo_lines

    rng = np.random.default_rng(0)
    ious = []
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(20, 60, 2))
        mask = rng.random((h, w)) < 0.5
        mask = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool)
        for inst in mask_to_instances(mask, min_area=1)[0]:
            own = decode_rle(inst.rle)
            (_, vals), *_ = parse_yolo_lines("\n".join(instances_to_yolo_lines([inst], 0, w, h)))
            seg = vals.astype(np.float32).reshape(-1, 2) * np.array([w, h], np.float32)
            seg = resample_segments([seg], n=max(1000, len(seg) + 1))[0]
            got = polygon2mask((h, w), [seg.reshape(-1)]).astype(bool)
            ious.append((got & own).sum() / (got | own).sum())
    assert np.mean(ious) >= 0.998 and np.min(ious) >= 0.9, (np.mean(ious), np.min(ious))
