"""Drawing one review overlay: ground truth as outlines, predictions as semi-transparent fills
labelled with class and score, one colour per class, and a legend (OpenCV drawing, pure function).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from defectkit.annotate.sources import Shape

#: RGB colours per class (category id 1 -> PALETTE[0], ...); tab10 order, distinct on grey images.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (127, 127, 127),
)


def class_colour(category_id: int) -> tuple[int, int, int]:
    """RGB colour of a 1-based category id (cycles through :data:`PALETTE`)."""
    return PALETTE[(int(category_id) - 1) % len(PALETTE)]


def _style(height: int, width: int) -> tuple[float, int]:
    """Font scale and line thickness proportional to the image (readable from 64 to 4000 px)."""
    side = min(height, width)
    return max(0.3, side / 1000.0), max(1, round(side / 300))


def draw_overlay(
    image: np.ndarray,
    gt: Sequence[Shape],
    pred: Sequence[Shape],
    class_names: Mapping[int, str],
    *,
    alpha: float = 0.45,
    legend: bool = True,
    caption: str | None = None,
) -> np.ndarray:
    """Draw GT and predictions on a copy of ``image``.

    image: HWC uint8 RGB. gt / pred: shapes with boxes XYXY in pixels (edge convention) and optional
    HxW bool masks. Predictions are drawn lowest score first, so the most confident is on top;
    GT outlines go above all fills. ``caption`` (e.g. "miss") is the legend's last line.
    Returns an HWC uint8 RGB array of the same size.
    """
    import cv2

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HWC uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    h, w = image.shape[:2]
    scale, thick = _style(h, w)
    canvas = image.copy()
    ordered = sorted(pred, key=lambda s: s.score or 0.0)
    for s in ordered:
        colour = np.array(class_colour(s.category_id), np.float32)
        region = s.region(h, w)
        canvas[region] = np.round(canvas[region] * (1.0 - alpha) + colour * alpha).astype(np.uint8)
        x0, y0, x1, y1 = _int_box(s.box, w, h)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), class_colour(s.category_id), 1)
    for s in gt:
        _outline(canvas, s, thick)
    for s in ordered:
        name = class_names.get(s.category_id, str(s.category_id))
        text = name if s.score is None else f"{name} {s.score:.2f}"
        x0, y0, _, _ = _int_box(s.box, w, h)
        _label(canvas, text, (x0, y0), class_colour(s.category_id), scale)
    if legend:
        present = sorted({s.category_id for s in (*gt, *pred)})
        entries = [(class_colour(c), class_names.get(c, str(c))) for c in present]
        _legend(canvas, entries + ([(None, caption)] if caption else []), scale)
    return canvas


def _int_box(box: Sequence[float], w: int, h: int) -> tuple[int, int, int, int]:
    """XYXY edge-convention box -> inclusive integer corners clipped to the image (for cv2)."""
    x0, y0, x1, y1 = box
    return (
        int(np.clip(round(x0), 0, w - 1)),
        int(np.clip(round(y0), 0, h - 1)),
        int(np.clip(round(x1) - 1, 0, w - 1)),
        int(np.clip(round(y1) - 1, 0, h - 1)),
    )


def _outline(canvas: np.ndarray, s: Shape, thick: int) -> None:
    import cv2

    colour = class_colour(s.category_id)
    if s.mask is None:
        x0, y0, x1, y1 = _int_box(s.box, canvas.shape[1], canvas.shape[0])
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thick)
        return
    # RETR_LIST keeps hole boundaries, so a ring-shaped defect is drawn as a ring.
    contours, _ = cv2.findContours(s.mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(canvas, contours, -1, colour, thick)


def _label(canvas: np.ndarray, text: str, corner: tuple[int, int], colour, scale: float) -> None:
    """Text on a filled background of the class colour, above the box corner (inside the image)."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    h, w = canvas.shape[:2]
    x = int(min(max(corner[0], 0), max(w - tw - 2, 0)))
    y = int(corner[1] - th - base - 2)
    if y < 0:
        y = int(min(corner[1] + 1, max(h - th - base - 2, 0)))
    cv2.rectangle(canvas, (x, y), (x + tw + 2, y + th + base + 2), colour, -1)
    cv2.putText(canvas, text, (x + 1, y + th + 1), font, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _legend(canvas: np.ndarray, entries: list[tuple[tuple[int, int, int] | None, str]], scale: float) -> None:
    """Top-left panel: the key 'outline = GT, fill = prediction', one swatch per class present
    and plain text lines (colour None)."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    lines = [("key", "outline GT / fill pred")] + [(c, n) for c, n in entries]
    (_, th), base = cv2.getTextSize("Ag", font, scale, 1)
    row = th + base + 3
    sw = th + 2
    width = max(cv2.getTextSize(n, font, scale, 1)[0][0] for _, n in lines) + sw + 10
    h, w = canvas.shape[:2]
    x1, y1 = min(width, w - 1), min(row * len(lines) + 4, h - 1)
    panel = canvas[: y1 + 1, : x1 + 1]
    panel[...] = (panel * 0.35).astype(np.uint8)
    for i, (colour, name) in enumerate(lines):
        y = 3 + i * row
        if colour == "key":
            cv2.rectangle(canvas, (3, y), (3 + sw // 2, y + th), (255, 255, 255), 1)
            cv2.rectangle(canvas, (3 + sw // 2 + 1, y), (3 + sw, y + th), (200, 200, 200), -1)
        elif colour is not None:
            cv2.rectangle(canvas, (3, y), (3 + sw, y + th), colour, -1)
        cv2.putText(canvas, name, (sw + 7, y + th), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
