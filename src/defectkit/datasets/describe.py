"""The dataset card: classes, counts per split and defect type, image sizes and channels, and
mask statistics (area fraction and connected components per defect type)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from defectkit.datasets.io import read_mask
from defectkit.datasets.mvtec import GOOD, DatasetIndex, ImageRecord
from defectkit.progress import progress


def count_components(mask: np.ndarray) -> int:
    """Number of 8-connected components of an HxW bool mask."""
    import cv2

    n, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return int(n - 1)


def _stats(values: list[float], digits: int = 4) -> dict[str, float]:
    if not values:
        return {"min": 0.0, "mean": 0.0, "max": 0.0}
    return {"min": round(min(values), digits), "mean": round(float(np.mean(values)), digits),
            "max": round(max(values), digits)}


def _mask_stats(records: list[ImageRecord]) -> dict[str, dict]:
    fractions: dict[str, list[float]] = {}
    components: dict[str, list[float]] = {}
    for r in progress(records, desc="masks"):
        m = read_mask(r.mask_path).mask
        fractions.setdefault(r.defect_type, []).append(float(m.mean()))
        components.setdefault(r.defect_type, []).append(float(count_components(m)))
    return {
        d: {"n_masks": len(fractions[d]), "area_fraction": _stats(fractions[d], 5),
            "components": _stats(components[d], 2)}
        for d in sorted(fractions)
    }


def describe_category(index: DatasetIndex, category: str) -> dict:
    """The card of one category as a JSON-ready dict."""
    recs = index.select(category=category)
    counts: dict[str, dict[str, int]] = {}
    for r in recs:
        counts.setdefault(r.split, {}).setdefault(r.defect_type, 0)
        counts[r.split][r.defect_type] += 1
    sizes = Counter(f"{r.width}x{r.height}" for r in recs)
    channels = Counter(r.channels for r in recs)
    defects = list(index.defect_types(category))
    return {
        "category": category,
        "path": str(index.category_root(category)),
        "n_defect_classes": len(defects),
        "defect_classes": defects,
        "counts": {s: dict(sorted(c.items(), key=lambda kv: (kv[0] != GOOD, kv[0]))) for s, c in sorted(counts.items())},
        "totals": {**{s: sum(c.values()) for s, c in sorted(counts.items())}, "all": len(recs)},
        "image_sizes": dict(sorted(sizes.items())),
        "size_varies": len(sizes) > 1,
        "channels": {str(k): v for k, v in sorted(channels.items())},
        "masks": _mask_stats([r for r in recs if r.mask_path is not None]),
    }


def describe_dataset(index: DatasetIndex) -> dict:
    """The card of every category in ``index`` plus the scan warnings and the layout found."""
    return {
        "root": str(index.root),
        "layout": index.layout,
        "categories": [describe_category(index, c) for c in index.categories],
        "warnings": list(index.warnings),
    }


def format_card(card: dict) -> str:
    """A readable plain-text rendering of :func:`describe_dataset`'s output."""
    from defectkit.datasets.layouts import LAYOUT_NAMES

    layout = card.get("layout", "mvtec")
    lines: list[str] = [f"Layout: {LAYOUT_NAMES.get(layout, layout)} ({layout})  root {card['root']}", ""]
    for cat in card["categories"]:
        lines.append(f"Dataset: {cat['category']}  ({cat['path']})")
        lines.append(f"Defect classes: {cat['n_defect_classes']} ({', '.join(cat['defect_classes'])})")
        sizes = ", ".join(f"{k} ({v})" for k, v in cat["image_sizes"].items())
        chans = ", ".join(f"{k}ch ({v})" for k, v in cat["channels"].items())
        mode = {"1": "grayscale", "3": "RGB", "4": "RGBA"}
        kinds = "/".join(mode.get(k, f"{k}-channel") for k in cat["channels"])
        lines.append(f"Images: {cat['totals']['all']}  size {sizes}{' (varies)' if cat['size_varies'] else ''}  "
                     f"channels {chans} [{kinds}]")
        lines.append("")
        sw = max([6, *(len(s) for s in cat["counts"])])  # "validation" (MVTec AD 2) is wider
        header = f"  {'split':<{sw}} {'defect type':<20} {'images':>6}"
        lines += [header, "  " + "-" * (len(header) - 2)]
        for split, c in cat["counts"].items():
            for d, n in c.items():
                lines.append(f"  {split:<{sw}} {d:<20} {n:>6}")
            lines.append(f"  {split:<{sw}} {'(total)':<20} {cat['totals'][split]:>6}")
        if cat["masks"]:
            lines += ["", f"  {'defect type':<20} {'masks':>5} {'area % min/mean/max':>24} {'components min/mean/max':>25}"]
            for d, s in cat["masks"].items():
                a, k = s["area_fraction"], s["components"]
                area = f"{100 * a['min']:.2f}/{100 * a['mean']:.2f}/{100 * a['max']:.2f}"
                comp = f"{k['min']:.0f}/{k['mean']:.2f}/{k['max']:.0f}"
                lines.append(f"  {d:<20} {s['n_masks']:>5} {area:>24} {comp:>25}")
        lines.append("")
    if card["warnings"]:
        lines.append(f"{len(card['warnings'])} warning(s):")
        lines += [f"  - {w}" for w in card["warnings"]]
    return "\n".join(lines).rstrip() + "\n"
