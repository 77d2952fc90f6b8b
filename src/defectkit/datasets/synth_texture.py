"""Synthetic texture category ``tile``: square ceramic tiles with grout lines and a fine grain.

Two defect kinds, in the spirit of MVTec's texture categories:
* ``crack``: a thin dark polyline (1-3 px wide, sometimes with a branch);
* ``glue_strip``: a translucent yellowish band across the surface (alpha-blended, soft grain).

Masks are exactly the pixels the defect changed. Deterministic given the RNG.
"""

from __future__ import annotations

import numpy as np

TILE_DEFECTS = ("crack", "glue_strip")


def _noise(rng: np.random.Generator, size: int, scale: int) -> np.ndarray:
    import cv2

    n = max(2, size // scale)
    return cv2.resize(rng.uniform(-1, 1, (n, n)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)


def render_tile_good(rng: np.random.Generator, size: int) -> np.ndarray:
    """An HxWx3 float32 image in [0, 1]: a grid of tiles (random offset, pitch ~size/3) with grain."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    pitch = size / rng.uniform(2.6, 3.4)
    ox, oy = rng.uniform(0, pitch, 2)
    gx, gy = np.mod(xx + ox, pitch), np.mod(yy + oy, pitch)
    grout_w = max(1.5, size / 90)
    grout = (np.minimum(gx, pitch - gx) < grout_w / 2) | (np.minimum(gy, pitch - gy) < grout_w / 2)
    base = np.array([0.78, 0.74, 0.66], np.float32) * rng.uniform(0.92, 1.06)
    tile_id = (np.floor((xx + ox) / pitch) * 7 + np.floor((yy + oy) / pitch) * 13).astype(np.int64)
    shade = 1 + 0.04 * np.sin(tile_id * 1.7 + rng.uniform(0, 6.3))  # each tile a slightly other shade
    grain = 0.05 * _noise(rng, size, 3) + 0.03 * _noise(rng, size, 12)
    img = base[None, None, :] * (shade + grain)[..., None]
    img[grout] = np.array([0.45, 0.44, 0.42], np.float32)
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def _crack(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    size = img.shape[0]
    mask8 = np.zeros((size, size), np.uint8)
    n = int(rng.integers(5, 9))
    start = rng.uniform(0.15, 0.85, 2) * size
    ang = rng.uniform(0, 2 * np.pi)
    steps = size * rng.uniform(0.05, 0.09)
    pts = [start]
    for _ in range(n):
        ang += rng.normal(0, 0.5)
        pts.append(pts[-1] + steps * np.array([np.cos(ang), np.sin(ang)]))
    width = int(rng.integers(1, 4)) if size >= 64 else 1
    cv2.polylines(mask8, [np.round(np.array(pts)).astype(np.int32)], False, 1, width)
    if rng.uniform() < 0.4:  # a branch from the middle
        mid = pts[n // 2]
        b_ang = ang + rng.choice([-1, 1]) * rng.uniform(0.6, 1.2)
        end = mid + steps * 2 * np.array([np.cos(b_ang), np.sin(b_ang)])
        cv2.polylines(mask8, [np.round(np.array([mid, end])).astype(np.int32)], False, 1, max(1, width - 1))
    mask = mask8.astype(bool)
    img[mask] = img[mask] * rng.uniform(0.25, 0.45)
    return mask


def _glue_strip(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = img.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    ang = rng.uniform(0, np.pi)
    c = rng.uniform(0.3, 0.7, 2) * size
    across = (xx - c[0]) * -np.sin(ang) + (yy - c[1]) * np.cos(ang)
    along = (xx - c[0]) * np.cos(ang) + (yy - c[1]) * np.sin(ang)
    half_w = size * rng.uniform(0.03, 0.06) * (1 + 0.25 * np.sin(along / size * 9 + rng.uniform(0, 6.3)))
    half_len = size * rng.uniform(0.2, 0.4)
    mask = (np.abs(across) < half_w) & (np.abs(along) < half_len)
    alpha = rng.uniform(0.35, 0.6)
    glue = np.array([0.93, 0.84, 0.45], np.float32) + 0.03 * _noise(rng, size, 6)[..., None]
    img[mask] = (1 - alpha) * img[mask] + alpha * glue[mask]
    return mask


_DEFECTS = {"crack": _crack, "glue_strip": _glue_strip}


def render_tile(size: int, defect: str | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One tile sample: (HWC uint8 RGB image, HxW bool mask; all False for ``defect=None``)."""
    img = render_tile_good(rng, size)
    mask = np.zeros((size, size), bool) if defect is None else _DEFECTS[defect](img, rng)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), mask
