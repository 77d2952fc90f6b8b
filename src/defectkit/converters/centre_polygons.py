"""YOLO segment polygons through the centres of a mask's boundary pixels, exact under ``cv2.fillPoly``.

ultralytics turns a label polygon into a mask with ``polygon2mask``: the normalised coordinates
times the image size, truncated to int32, drawn with ``cv2.fillPoly``, where integer (x, y) is the
centre of pixel (x, y) and every pixel the outline passes through is filled. A polygon along
pixel edges (right for pycocotools) therefore reads one pixel too large on the right and bottom.
These polygons run through the centres of the boundary pixels (``cv2.findContours``); a hole is
joined to the outline by a zero-width cut (there and back along a path of foreground pixels), so
one polygon per 8-connected component reproduces the component, holes included. Coordinates here
are ints on that centre grid; a YOLO file stores ``(x + 0.5) / width``, which ultralytics' int32
truncation maps back to ``x``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

_STEPS = tuple((dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dx or dy)


def trace_centre_polygon(component: np.ndarray) -> np.ndarray:
    """HxW bool, one 8-connected component -> Kx2 int64 polygon (XY, pixel-centre grid).

    Straight runs (horizontal, vertical, 45 degrees) keep only their end points, which ``fillPoly``
    draws exactly as the full run: a straight 1-pixel-wide line is its 2 end points, a single pixel
    1 point (:func:`outward_positions` makes both a polygon). An empty mask gives a 0x2 array."""
    import cv2

    padded = np.pad(np.asarray(component, dtype=bool), 1).view(np.uint8)
    contours, hierarchy = cv2.findContours(padded, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((0, 2), dtype=np.int64)
    if len(contours) > 1:  # holes: join them along full (uncompressed) contours
        contours, hierarchy = cv2.findContours(padded, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    links = hierarchy[0]
    outer = max((i for i in range(len(contours)) if links[i][3] < 0), key=lambda i: len(contours[i]))
    if len(contours) == 1:
        return _compress(contours[0].reshape(-1, 2).astype(np.int64) - 1)
    points = [tuple(p) for p in contours[outer].reshape(-1, 2).tolist()]
    for i in range(len(contours)):
        if links[i][3] == outer:
            points = _join_hole(padded, points, [tuple(p) for p in contours[i].reshape(-1, 2).tolist()])
    return _compress(np.asarray(points, dtype=np.int64) - 1)


def _cut_path(padded: np.ndarray, on_polygon: set, ring: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Shortest 8-connected path of foreground pixels from a polygon point to a point of ``ring``:
    ``[point on the polygon, ..., point on the ring]`` (breadth-first from the whole ring)."""
    prev: dict[tuple[int, int], tuple[int, int] | None] = dict.fromkeys(ring)
    found = next((p for p in ring if p in on_polygon), None)
    queue = deque(prev)
    while found is None and queue:
        x, y = queue.popleft()
        for dx, dy in _STEPS:
            n = (x + dx, y + dy)
            if n in prev or not padded[n[1], n[0]]:
                continue
            prev[n] = (x, y)
            if n in on_polygon:
                found = n
                break
            queue.append(n)
    if found is None:  # cannot happen for one 8-connected component; never write a wrong cut
        raise ValueError("hole is not connected to the outline")
    path = [found]
    while (step := prev[path[-1]]) is not None:
        path.append(step)
    return path


def _join_hole(padded: np.ndarray, points: list, ring: list) -> list:
    """``points`` with the hole contour ``ring`` spliced in by a zero-width cut."""
    first = {}
    for j, p in enumerate(points):
        first.setdefault(p, j)
    path = _cut_path(padded, set(first), ring)
    start = path[-1]
    k = ring.index(start)
    ring = ring[k:] + ring[:k]
    j = first[path[0]]
    return points[:j] + path + ring[1:] + [start] + path[-2::-1] + points[j + 1 :]


def _compress(points: np.ndarray) -> np.ndarray:
    """Drop repeated points and the inner points of straight runs (closed polygon)."""
    if len(points) > 1:
        moved = np.any(points != np.roll(points, 1, axis=0), axis=1)
        points = points[moved] if moved.any() else points[:1]
    if len(points) < 3:
        return points
    step = np.roll(points, -1, axis=0) - points
    return points[np.any(step != np.roll(step, 1, axis=0), axis=1)]


def fillpoly_raster(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterise Kx2 float XY pixel-coordinate polygons as ultralytics' ``polygon2mask`` does
    (int32 truncation, ``cv2.fillPoly``, each polygon filled on its own) -> HxW bool."""
    import cv2

    canvas = np.zeros((height, width), dtype=np.uint8)
    for poly in polygons:
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(pts):
            cv2.fillPoly(canvas, [pts.astype(np.int32).reshape(-1, 1, 2)], 1)
    return canvas.astype(bool)


#: How far inside its pixel a written vertex stays from the pixel's edges (pixels)
EDGE_MARGIN = 1 / 64


def outward_positions(poly: np.ndarray) -> np.ndarray:
    """Kx2 int centre-grid polygon -> Kx2 float XY in the pixel-edge convention (pixel x covers
    [x, x+1)): each vertex moved inside its own pixel towards the outline's outside, to within
    :data:`EDGE_MARGIN` of the pixel's edge (0.5 along an axis the outline does not face).

    Truncating to int (ultralytics) gives back ``poly`` exactly, so ``cv2.fillPoly`` draws the same
    pixels, while the polygon's extent is the mask's box less 2 x EDGE_MARGIN (the box ultralytics
    derives for detection) and its shape follows the pixel edges when ultralytics rescales it.
    Along 45-degree edges the offsets make the inside coordinate lead (:func:`_lead_inside`), so the
    points ultralytics' dataset interpolates on an edge (``resample_segments``) truncate to pixels of
    the edge or inside it, not outside."""
    poly = _compress(np.asarray(poly, dtype=np.int64).reshape(-1, 2))
    if len(poly) == 0:
        return poly.astype(np.float64)
    if len(poly) <= 2:  # one pixel, or a straight line from A to B: the pixels' (parallelogram) outline
        a, b = poly[0], poly[-1]
        d = np.sign(b - a) if (a != b).any() else np.array([1, 0])
        n = np.array([-d[1], d[0]])
        corners = [(a, -d - n), (b, d - n), (b, d + n), (a, -d + n)]
        if (a == b).all():
            corners = [(a, np.array(o)) for o in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        return np.array([p + np.where(o > 0, 1 - EDGE_MARGIN, np.where(o < 0, EDGE_MARGIN, 0.5)) for p, o in corners])
    d_out = np.sign(np.roll(poly, -1, axis=0) - poly)
    d_in = np.sign(poly - np.roll(poly, 1, axis=0))
    x, y = poly[:, 0], poly[:, 1]
    clockwise = np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) >= 0  # on screen (y down)
    rot = np.array([[0, -1], [1, 0]]) if clockwise else np.array([[0, 1], [-1, 0]])
    out = d_in @ rot + d_out @ rot  # outward normals of the two edges at each vertex (y down)
    tip = ~out.any(axis=1) & (d_in == -d_out).all(axis=1)  # the far end of a 1-pixel-wide line
    out[tip] = d_in[tip]
    offset = np.where(out > 0, 1 - EDGE_MARGIN, np.where(out < 0, EDGE_MARGIN, 0.5))
    locked = (poly == poly.min(axis=0)) | (poly == poly.max(axis=0))
    offset[poly == poly.min(axis=0)] = EDGE_MARGIN  # the extreme vertices span the mask's box
    offset[poly == poly.max(axis=0)] = 1 - EDGE_MARGIN
    _lead_inside(offset, d_in, d_out, d_in @ rot, d_out @ rot, locked)
    return poly + offset


#: how far (pixels) the inside coordinate should lead along a 45-degree edge; offsets stay in [LO, HI]
_LEAD, _LO, _HI = 0.25, 1 / 128, 1 - 1 / 128


def _diagonal_side(d_in, d_out, n_in, n_out, main: bool) -> np.ndarray:
    """Per vertex: the inside's sign (-n_x) of its diagonal edge(s) of one kind (x = y if ``main``,
    else x = -y); 0 without one, or where the two edges want opposite sides (there and back)."""
    def one(d, n):
        diag = (np.abs(d) == 1).all(axis=1) & ((d[:, 0] == d[:, 1]) == main)
        return np.where(diag, -n[:, 0], 0)

    a, b = one(d_in, n_in), one(d_out, n_out)
    return np.where((a != 0) & (b != 0), np.where(a == b, a, 0), a + b)


def _lead_inside(offset, d_in, d_out, n_in, n_out, locked) -> None:
    """Adjust ``offset`` (Kx2, in place) at vertices on 45-degree edges.

    Between two vertices of a diagonal edge the truncated pixel steps off the edge wherever x and y
    cross a pixel boundary at different points: towards the side of the coordinate that crosses
    first. With ``ox - oy`` (edge along x = y) or ``ox + oy - 1`` (along x = -y) of the sign of the
    inside at both ends, every such step lands inside the mask. Extreme coordinates (the box) stay."""
    main = _diagonal_side(d_in, d_out, n_in, n_out, True)
    anti = _diagonal_side(d_in, d_out, n_in, n_out, False)
    both = (main != 0) & (anti != 0)
    corner = both & ~locked.any(axis=1)  # between two diagonals: both conditions near the pixel's centre
    offset[corner, 0] = (1 + (main + anti)[corner] * _LEAD) / 2
    offset[corner, 1] = (1 + (anti - main)[corner] * _LEAD) / 2
    one = ~both & ((main != 0) | (anti != 0))
    side = np.where(main != 0, main, anti).astype(np.float64)
    is_main = main != 0
    ox, oy = offset[:, 0], offset[:, 1]

    def lead(x, y):
        return side * np.where(is_main, x - y, x + y - 1)

    move_y = np.clip(np.where(is_main, ox - side * _LEAD, 1 + side * _LEAD - ox), _LO, _HI)
    move_x = np.clip(np.where(is_main, oy + side * _LEAD, 1 + side * _LEAD - oy), _LO, _HI)
    scores = np.stack([lead(ox, oy), np.where(locked[:, 1], -np.inf, lead(ox, move_y)),
                       np.where(locked[:, 0], -np.inf, lead(move_x, oy))])
    best = scores.argmax(axis=0)
    change = one & (scores[0] < _LEAD) & (scores.max(axis=0) > 0) & (best > 0)
    new_y, new_x = change & (best == 1), change & (best == 2)
    offset[new_y, 1] = move_y[new_y]
    offset[new_x, 0] = move_x[new_x]
