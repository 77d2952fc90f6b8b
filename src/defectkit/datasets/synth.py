"""Synthetic MVTec-format data: a bottle-like object seen from above on a textured background.

Three defect kinds mirror MVTec bottle's:
* ``broken_large``: a large irregular broken region of the rim, sometimes with a hole in the mask;
* ``broken_small``: one to three small chips on the rim (separate connected components);
* ``contamination``: a foreign-coloured blob or a thin streak inside the bottle.

Some defects are colour-close to the object, and object position, size and lighting vary a
little, so the task is learnable but not trivial. Output is deterministic given the seed: the
same config writes byte-identical PNG files.

Several categories: ``categories=("bottle", "tile")``; a category named ``tile`` is the texture
category of :mod:`defectkit.datasets.synth_texture` (``crack``, ``glue_strip``), any other name the
bottle-like object. ``layout`` writes the same samples in the MVTec AD 2 or VisA layout
(:mod:`defectkit.datasets.synth_layouts`).
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from defectkit.datasets.io import encode_png
from defectkit.datasets.synth_layouts import SYNTH_LAYOUTS, Job, jobs_for, place, visa_csv
from defectkit.datasets.synth_texture import TILE_DEFECTS, render_tile
from defectkit.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from defectkit.progress import progress

log = logging.getLogger(__name__)

DEFECT_TYPES = ("broken_large", "broken_small", "contamination")
_FOLDER_IDS = {"train/good": 0, "test/good": 1, "broken_large": 2, "broken_small": 3, "contamination": 4,
               "crack": 5, "glue_strip": 6, "private": 7, "private_mixed": 8}
TEXTURE_CATEGORIES = ("tile",)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Sizes are square, in pixels; counts are images per folder (per category).

    categories: several categories (``("bottle", "tile")``); empty = the one ``category``.
    layout: "mvtec" (default), "mvtec_ad2" or "visa".
    """

    category: str = "bottle"
    n_train: int = 60
    n_test_good: int = 20
    n_test_per_defect: int = 20
    size: int = 256
    seed: int = 0
    categories: tuple[str, ...] = ()
    layout: str = "mvtec"

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ValueError(f"size must be >= 32 px, got {self.size}")
        for name in ("n_train", "n_test_good", "n_test_per_defect"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in (self.category, *self.categories):
            if not name or "/" in name or "," in name or name.startswith("."):
                raise ValueError(f"bad category name {name!r}")
        reserved = [n for n in self.categories if n in ("all", "report")]
        if reserved:  # `--categories all` means every category; output/report/ is the cross-category report
            raise ValueError(f"categories: {reserved[0]!r} is reserved (`all` selects every category in "
                             "split, convert and run; `report` is the run's cross-category report): name "
                             "the categories, e.g. bottle,tile")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"categories: each name once, got {list(self.categories)}")
        if self.layout not in SYNTH_LAYOUTS:
            raise ValueError(f"layout must be one of {SYNTH_LAYOUTS}, got {self.layout!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """The categories to write."""
        return self.categories or (self.category,)


@dataclass(frozen=True)
class _Geometry:
    cx: float
    cy: float
    r: float  # outer radius in pixels


def _smooth_noise(rng: np.random.Generator, size: int, scale: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid, bilinearly upsampled."""
    import cv2

    coarse = rng.uniform(-1, 1, (max(2, size // scale), max(2, size // scale))).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _render_good(rng: np.random.Generator, size: int) -> tuple[np.ndarray, _Geometry]:
    """An HxWx3 float32 image in [0, 1] of a defect-free bottle and its geometry."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    geo = _Geometry(
        cx=size * (0.5 + rng.uniform(-0.03, 0.03)),
        cy=size * (0.5 + rng.uniform(-0.03, 0.03)),
        r=size * 0.44 * rng.uniform(0.96, 1.03),
    )
    d = np.hypot(xx - geo.cx, yy - geo.cy) / geo.r  # 1.0 at the outer edge
    gain = rng.uniform(0.9, 1.08)
    bg = np.array([0.86, 0.86, 0.89], np.float32) + 0.03 * _smooth_noise(rng, size, 16)[..., None]
    layers = [  # (outer edge in units of r, colour)
        (1.00, (0.28, 0.27, 0.30)),
        (0.80, (0.20, 0.20, 0.22)),
        (0.74, (0.55, 0.34, 0.20)),  # copper ring
        (0.71, (0.18, 0.24, 0.24)),  # glass
        (0.55, (0.10, 0.09, 0.12)),  # interior
    ]
    img = bg.copy()
    edge = 1.5 / geo.r
    for outer, colour in layers:
        alpha = np.clip((outer - d) / edge + 0.5, 0, 1)[..., None]
        img = img * (1 - alpha) + np.array(colour, np.float32) * alpha
    texture = 0.035 * _smooth_noise(rng, size, 4)[..., None] * (d < 0.71)[..., None]
    sheen = 0.05 * np.exp(-((d - 0.9) ** 2) / 0.004)[..., None]
    img = (img + texture + sheen) * gain + rng.normal(0, 0.012, img.shape).astype(np.float32)
    return np.clip(img, 0, 1), geo


def _blob_polygon(rng: np.random.Generator, cx: float, cy: float, radius: float, n: int = 14) -> np.ndarray:
    """An irregular star-shaped polygon (Nx2 XY pixels) around (cx, cy)."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.55, 1.15, n)
    sx, sy = rng.uniform(0.7, 1.3, 2)
    return np.stack([cx + sx * radii * np.cos(angles), cy + sy * radii * np.sin(angles)], 1)


def _fill(shape: tuple[int, int], polygons: list[np.ndarray]) -> np.ndarray:
    import cv2

    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(p * 16).astype(np.int32) for p in polygons], 1, cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _paint(img: np.ndarray, mask: np.ndarray, colour: np.ndarray, rng: np.random.Generator, texture: float) -> None:
    noise = texture * _smooth_noise(rng, img.shape[0], 3)[..., None]
    painted = np.clip(colour[None, None, :] + noise, 0, 1)
    img[mask] = painted[mask]


def _broken_large(img: np.ndarray, geo: _Geometry, rng: np.random.Generator) -> np.ndarray:
    size = img.shape[0]
    theta0, span = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(60, 150))
    t = np.linspace(theta0, theta0 + span, 24)
    r_out = geo.r * rng.uniform(0.82, 1.0) * rng.uniform(0.93, 1.0, t.size)
    r_in = geo.r * rng.uniform(0.42, 0.6) * rng.uniform(0.9, 1.08, t.size)
    outer = np.stack([geo.cx + r_out * np.cos(t), geo.cy + r_out * np.sin(t)], 1)
    inner = np.stack([geo.cx + r_in * np.cos(t), geo.cy + r_in * np.sin(t)], 1)[::-1]
    mask = _fill((size, size), [np.concatenate([outer, inner])])
    colour = np.array([0.62, 0.64, 0.66], np.float32) * rng.uniform(0.75, 1.3)
    _paint(img, mask, colour, rng, texture=0.12)
    if rng.uniform() < 0.25:  # an intact island inside the broken region: a mask with a hole
        tm = theta0 + span / 2
        rm = geo.r * 0.76
        hole = _fill((size, size), [_blob_polygon(rng, geo.cx + rm * np.cos(tm), geo.cy + rm * np.sin(tm),
                                                  geo.r * 0.05, n=8)]) & mask
        hole_img, _ = _render_good(np.random.default_rng(0), size)
        img[hole] = hole_img[hole] * 0.8
        mask &= ~hole
    return mask


def _broken_small(img: np.ndarray, geo: _Geometry, rng: np.random.Generator) -> np.ndarray:
    size = img.shape[0]
    n = rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])
    theta = rng.uniform(0, 2 * np.pi)
    polys = []
    for _ in range(n):
        theta += rng.uniform(0.35, 0.9)
        rr = geo.r * rng.uniform(0.72, 0.95)
        polys.append(_blob_polygon(rng, geo.cx + rr * np.cos(theta), geo.cy + rr * np.sin(theta),
                                   geo.r * rng.uniform(0.08, 0.15), n=9))
    mask = _fill((size, size), polys)
    bright = rng.uniform() > 0.2
    colour = np.array([0.85, 0.82, 0.72] if bright else [0.45, 0.40, 0.36], np.float32)
    _paint(img, mask, colour * rng.uniform(0.9, 1.05), rng, texture=0.08)
    return mask


def _contamination(img: np.ndarray, geo: _Geometry, rng: np.random.Generator) -> np.ndarray:
    import cv2

    size = img.shape[0]
    theta, rr = rng.uniform(0, 2 * np.pi), geo.r * rng.uniform(0.0, 0.45)
    cx, cy = geo.cx + rr * np.cos(theta), geo.cy + rr * np.sin(theta)
    if rng.uniform() < 0.25:  # a thin streak
        mask8 = np.zeros((size, size), np.uint8)
        length = geo.r * rng.uniform(0.25, 0.45)
        t = np.linspace(-0.5, 0.5, 6)
        ang = rng.uniform(0, np.pi)
        pts = np.stack([cx + t * length * np.cos(ang), cy + t * length * np.sin(ang)], 1)
        pts += rng.normal(0, geo.r * 0.02, pts.shape)
        cv2.polylines(mask8, [np.round(pts).astype(np.int32)], False, 1, max(2, size // 50))
        mask = mask8.astype(bool)
    else:
        mask = _fill((size, size), [_blob_polygon(rng, cx, cy, geo.r * rng.uniform(0.1, 0.22))])
    palette = [(0.55, 0.40, 0.22), (0.75, 0.75, 0.70), (0.30, 0.45, 0.25), (0.24, 0.22, 0.26)]
    colour = np.array(palette[rng.integers(len(palette))], np.float32)
    _paint(img, mask, colour * rng.uniform(0.85, 1.1), rng, texture=0.06)
    return mask


_DEFECTS = {"broken_large": _broken_large, "broken_small": _broken_small, "contamination": _contamination}


def render_sample(size: int, defect: str | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic sample: (HWC uint8 RGB image, HxW bool mask; all False for ``defect=None``)."""
    import cv2

    img, geo = _render_good(rng, size)
    mask = np.zeros((size, size), bool) if defect is None else _DEFECTS[defect](img, geo, rng)
    img = cv2.GaussianBlur(img, (0, 0), 0.6)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), mask


def defect_types_of(category: str) -> tuple[str, ...]:
    """The synthetic defect types of a category: the texture's for ``tile``, else the bottle's."""
    return TILE_DEFECTS if category in TEXTURE_CATEGORIES else DEFECT_TYPES


def render_job(config: SynthConfig, job: Job) -> tuple[np.ndarray, np.ndarray]:
    """(HWC uint8 RGB image, HxW bool mask) of one job, from its own RNG stream: (seed, folder, index),
    with a hash of the category name for categories other than ``config.category``."""
    if job.role == "train":
        key = _FOLDER_IDS["train/good"]
    else:
        key = _FOLDER_IDS[job.defect or "test/good"] if job.role == "test" else _FOLDER_IDS[job.role]
    salt = [] if job.category == config.category else [zlib.crc32(job.category.encode())]
    rng = np.random.default_rng([config.seed, *salt, key, job.i])
    defect = job.defect if job.role in ("test", "private_mixed") else None
    if job.category in TEXTURE_CATEGORIES:
        return render_tile(config.size, defect, rng)
    return render_sample(config.size, defect, rng)


def _jpg(arr: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(arr[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def generate_synthetic(out: str | Path, config: SynthConfig = SynthConfig()) -> Path:
    """Write synthetic categories in ``config.layout`` under ``out`` and return the folder to scan:
    ``out/<category>`` for one category in the MVTec AD or AD 2 layout, else ``out``.

    MVTec layout: train/good/NNN.png, test/good/NNN.png, test/<defect>/NNN.png and
    ground_truth/<defect>/NNN_mask.png (uint8 0/255); the other layouts are described in
    :mod:`defectkit.datasets.synth_layouts`. Each image draws from its own RNG stream seeded by
    (seed, folder, index), so changing one count does not change other images.
    """
    root = Path(out)
    rows: list[tuple[str, ...]] = []
    n = 0
    for category in config.names:
        defects = defect_types_of(category)
        jobs = jobs_for(category, defects, config.n_train, config.n_test_good, config.n_test_per_defect,
                        config.layout)
        for job in progress(jobs, desc=f"synth {category}"):
            img, mask = render_job(config, job)
            where = place(job, config.layout, defects, config.n_train, config.n_test_per_defect)
            data = _jpg(img) if where.image.endswith(".JPG") else encode_png(img)
            atomic_write_bytes(root / where.image, data)
            if where.mask is not None:
                atomic_write_bytes(root / where.mask, encode_png(mask.astype(np.uint8) * where.mask_value))
            if where.row is not None:
                rows.append(where.row)
        n += len(jobs)
        meta = {k: v for k, v in asdict(config).items() if k not in ("categories", "layout")}
        if config.categories or config.layout != "mvtec":
            meta.update(category=category, categories=list(config.names), layout=config.layout)
        atomic_write_json(root / category / "defectkit_synth.json", {"generator": "defectkit.synth", **meta})
    if config.layout == "visa":
        atomic_write_text(root / "split_csv" / "1cls.csv", visa_csv(rows))
    log.info("wrote %d synthetic images to %s", n, root)
    one = len(config.names) == 1 and config.layout != "visa"
    return root / config.names[0] if one else root
