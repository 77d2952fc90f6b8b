"""Exact pixel-edge polygons for binary masks, their simplification and rasterisation back.

Coordinate convention: pixel (x, y) covers the square [x, x+1] x [y, y+1]; polygon vertices lie on
this pixel-corner grid (integers), XY order, in pixels. A polygon that traces these edges is
re-rasterised exactly by ``pycocotools.mask.frPyObjects``, unlike polygons through pixel centres
(``cv2.findContours``), which come back about half a pixel smaller all round.
"""

from __future__ import annotations

import numpy as np

# Directions of boundary edges on the corner grid (screen coordinates, y down).
_DX = np.array([1, 0, -1, 0], dtype=np.int64)  # right, down, left, up
_DY = np.array([0, 1, 0, -1], dtype=np.int64)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """HxW bool -> HxW bool with every hole filled.

    A hole is background that is not 4-connected to the image border (so background joined to the
    outside only through a diagonal gap between foreground pixels counts as a hole, which matches
    8-connected foreground components).
    """
    return filled_padded(mask)[1:-1, 1:-1].astype(bool)


def filled_padded(mask: np.ndarray) -> np.ndarray:
    """HxW bool -> (H+2)x(W+2) uint8 0/1: the mask with its holes filled and a 0 border all round
    (the layout ``trace_padded`` takes, so the converter pads each component once)."""
    import cv2

    # 1 = background, with a background border all round (C order: floodFill refuses other layouts)
    background = np.ones((mask.shape[0] + 2, mask.shape[1] + 2), dtype=np.uint8)
    background[1:-1, 1:-1] = ~mask.astype(bool)
    cv2.floodFill(background, None, (0, 0), 2, flags=4)  # outside -> 2; holes stay 1
    return (background != 2).view(np.uint8)


def trace_outer_boundary(filled: np.ndarray) -> list[np.ndarray]:
    """Trace the boundary of the union of the True pixel squares of a hole-free mask.

    filled: HxW bool, one 8-connected component without holes (see ``fill_holes``).
    Returns a list of Kx2 int64 arrays (XY vertices on the pixel-corner grid, clockwise on screen,
    only the corners where the direction changes). For one 8-connected component the list holds
    one polygon; where two pixels touch only at a corner the polygon passes that corner twice.
    """
    return trace_padded(np.pad(filled.astype(np.uint8), 1))


def _edge_keys(f: np.ndarray) -> np.ndarray:
    """Sorted keys ``vertex * 4 + direction`` of the boundary edges of padded 0/1 ``f``.

    Vertex (vx, vy) of the (H+1)x(W+1) corner grid is the corner shared by padded pixels
    (vx, vy) .. (vx+1, vy+1); edges run with the foreground on their right (clockwise on screen).
    """
    wp = f.shape[1]
    vw = wp - 1
    dv = f[1:] - f[:-1]  # +1 (uint8 1): top edge of a pixel; -1 (255): bottom edge
    dh = f[:, 1:] - f[:, :-1]  # +1: left edge of a pixel; -1: right edge
    iv = np.flatnonzero(dv != 0)  # nonzero of a bool array is ~8x faster than of uint8
    vy, vx = np.divmod(iv, wp)
    top = dv.reshape(-1)[iv] == 1
    ih = np.flatnonzero(dh != 0)
    hy, hx = np.divmod(ih, vw)
    left = dh.reshape(-1)[ih] == 1
    return np.sort(
        np.concatenate(
            [
                (vy * vw + vx - 1)[top] * 4,  # right along a top edge, from the pixel's left corner
                (vy * vw + vx)[~top] * 4 + 2,  # left along a bottom edge, from its right corner
                ((hy - 1) * vw + hx)[~left] * 4 + 1,  # down a right edge, from its top corner
                (hy * vw + hx)[left] * 4 + 3,  # up a left edge, from its bottom corner
            ]
        )
    )


def trace_padded(f: np.ndarray) -> list[np.ndarray]:
    """``trace_outer_boundary`` of the hole-free mask inside padded (H+2)x(W+2) uint8 0/1 ``f``;
    vertices are in the unpadded mask's corner coordinates."""
    keys = _edge_keys(f)
    n = keys.size
    if n == 0:
        return []
    vw = f.shape[1] - 1
    v, d = keys // 4, keys % 4
    vy, vx = v // vw, v % vw
    end = v + _DY[d] * vw + _DX[d]
    succ = np.full(n, -1, dtype=np.int64)
    # Prefer the left turn, then straight, then right: keeps diagonal neighbours connected.
    for turn in (3, 0, 1):
        cand = end * 4 + (d + turn) % 4
        pos = np.minimum(np.searchsorted(keys, cand), n - 1)
        take = (succ < 0) & (keys[pos] == cand)
        succ[take] = pos[take]
    nxt = succ.tolist()
    seen = np.zeros(n, dtype=bool)
    polygons: list[np.ndarray] = []
    for start in range(n):
        if seen[start]:
            continue
        order = [start]
        i = nxt[start]
        while i != start:
            order.append(i)
            i = nxt[i]
        idx = np.asarray(order, dtype=np.int64)
        seen[idx] = True
        dirs = d[idx]
        corner = dirs != np.roll(dirs, 1)
        pts = np.stack([vx[idx][corner], vy[idx][corner]], axis=1)
        polygons.append(pts)
    polygons.sort(key=len, reverse=True)
    return polygons


def simplify_polygon(poly: np.ndarray, epsilon: float) -> np.ndarray:
    """Douglas-Peucker on a closed Kx2 int polygon; keeps a subset of the vertices (so stays integer).

    Returns the input unchanged for ``epsilon <= 0`` or when simplification would leave < 3 points.
    """
    if epsilon <= 0 or len(poly) <= 4:
        return poly
    import cv2

    approx = cv2.approxPolyDP(poly.reshape(-1, 1, 2).astype(np.int32), float(epsilon), True).reshape(-1, 2)
    return poly if len(approx) < 3 else approx.astype(np.int64)


def flatten(poly: np.ndarray) -> list[int | float]:
    """Kx2 XY array -> [x1, y1, x2, y2, ...] (ints stay ints)."""
    return poly.reshape(-1).tolist()


def rasterize_coco(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons (flat XY lists, pixel-edge convention) with pycocotools -> HxW bool."""
    from pycocotools import mask as mask_utils

    polys = [p for p in polygons if len(p) >= 6]
    if not polys:
        return np.zeros((height, width), dtype=bool)
    rles = mask_utils.frPyObjects(polys, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def rasterize_cv2(polygons: list[np.ndarray], height: int, width: int, shift: int = 4) -> np.ndarray:
    """Rasterise Kx2 float XY polygons (pixel-edge convention) with ``cv2.fillPoly`` -> HxW bool.

    ``fillPoly`` also fills every pixel its boundary touches, so a polygon on pixel corners would
    come back one pixel too large on the right and bottom. It is drawn on a 4x finer grid (with
    ``shift`` bits of sub-pixel precision) and each pixel takes the value of a sub-pixel near its
    centre, i.e. a pixel is covered when its centre is inside the polygon.
    """
    import cv2

    s = 4
    canvas = np.zeros((height * s, width * s), dtype=np.uint8)
    scale = float(s << shift)
    pts = [
        np.round(np.asarray(p, dtype=np.float64).reshape(-1, 2) * scale).astype(np.int32)
        for p in polygons
        if len(p) >= 3
    ]
    if pts:
        cv2.fillPoly(canvas, pts, 1, lineType=cv2.LINE_8, shift=shift)
    return canvas[s // 2 :: s, s // 2 :: s].astype(bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two HxW bool masks; 1.0 when both are empty."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else float(np.count_nonzero(a & b)) / union
