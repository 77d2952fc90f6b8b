"""Masks/s and polygon fidelity: `defectkit convert` (COCO + YOLO) vs ultralytics' mask converter.

    python benchmarks/convert_bench.py                       # generated 900x900 bottle-like data
    python benchmarks/convert_bench.py --data /data/mvtec/bottle --workers 2

Both tools run in the same process, on the same masks, taking turns (best wall time of --repeat
runs each; the median CPU time of all processes is printed too, the fairer number on a shared
machine, where the wall time of --workers 2 depends on what else runs).
defectkit's time covers the whole command: split check (hashing every file), reading masks,
instances, COCO json for train/val/test and YOLO labels + data.yaml (images linked, not copied:
ultralytics writes labels only). ultralytics' `convert_segment_masks_to_yolo_seg` gets a flat
folder of the same masks and ``classes=255`` (it maps value v to class v-1, so MVTec's 0/255 masks
are otherwise skipped). Fidelity: every mask re-rasterised from the written labels, IoU against
the mask itself (holes included): COCO with ``pycocotools.mask.frPyObjects`` (RLE for masks with
holes); YOLO as ultralytics reads a label (``polygon2mask``: denormalised in float32, truncated to
int32, ``cv2.fillPoly``), for defectkit's rows and for ultralytics' own converter's.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the converter's pool workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed_pair(fns: dict, out: Path, repeat: int) -> dict[str, tuple[float, float]]:
    """Best wall time and median CPU time of each ``fn(folder)``, each run into a fresh folder.

    The tools take turns (A, B, A, B, ...), so both meet the same load on a shared machine.
    """
    walls: dict[str, list[float]] = {k: [] for k in fns}
    cpus: dict[str, list[float]] = {k: [] for k in fns}
    for k in range(repeat):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), _cpu_seconds()
            fn(out / name / str(k))
            walls[name].append(time.perf_counter() - t0)
            cpus[name].append(_cpu_seconds() - c0)
    return {k: (min(walls[k]), statistics.median(cpus[k])) for k in fns}


def _yolo_iou(txt: Path, truth: np.ndarray) -> float:
    """IoU of the label file read as ultralytics does (float32 pixels, int32, cv2.fillPoly) vs ``truth``."""
    from defectkit.converters import mask_iou, parse_yolo_lines
    from defectkit.converters.centre_polygons import fillpoly_raster

    h, w = truth.shape
    rows = parse_yolo_lines(txt.read_text()) if txt.is_file() else []
    size = np.array([w, h], dtype=np.float32)
    polys = [v.astype(np.float32).reshape(-1, 2) * size for _, v in rows if len(v) >= 6]
    return mask_iou(fillpoly_raster(polys, h, w), truth)


def _stats(values: list[float]) -> str:
    return f"mean IoU {statistics.fmean(values):.4f}, min {min(values):.4f}" if values else "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, help="MVTec category folder (default: generate one)")
    ap.add_argument("--n", type=int, default=20, help="generated defect images per defect type (default 20)")
    ap.add_argument("--size", type=int, default=900, help="generated image size (default 900)")
    ap.add_argument("--workers", type=int, default=2, help="defectkit convert --workers (default 2)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    args = ap.parse_args(argv)

    from ultralytics.data.converter import convert_segment_masks_to_yolo_seg

    from defectkit.converters import ConvertConfig, convert_dataset, load_coco, mask_iou, rasterize_coco
    from defectkit.converters.instances import decode_rle
    from defectkit.datasets.io import read_mask
    from defectkit.datasets.mvtec import scan_mvtec
    from defectkit.datasets.split import SplitConfig, make_split
    from defectkit.datasets.synth import SynthConfig, generate_synthetic

    logging.getLogger("ultralytics").setLevel(logging.WARNING)  # it logs two lines per mask
    tmp = Path(tempfile.mkdtemp(prefix="convert_bench_"))
    try:
        data = args.data or generate_synthetic(
            tmp / "data", SynthConfig(n_train=2, n_test_good=1, n_test_per_defect=args.n, size=args.size)
        )
        manifest = make_split(scan_mvtec(data), SplitConfig(val_fraction=0.0))
        split = manifest.save(tmp / "split.json")
        masked = [e for e in manifest.entries if e.mask]
        flat = tmp / "masks"
        flat.mkdir()
        for e in masked:
            shutil.copyfile(manifest.mask_path(e), flat / f"{e.name}.png")

        cfg = ConvertConfig(
            dataset=str(data),
            split=str(split),
            output="",
            formats=("coco", "yolo"),
            link=True,
            workers=args.workers,
            min_area=1,
        )
        times = _timed_pair(
            {
                "dk": lambda out: convert_dataset(dataclasses.replace(cfg, output=str(out))),
                "ul": lambda out: convert_segment_masks_to_yolo_seg(str(flat), str(out), classes=255),
            },
            tmp,
            args.repeat,
        )
        (t_dk, c_dk), (t_ul, c_ul) = times["dk"], times["ul"]

        truths = {e.name: read_mask(manifest.mask_path(e)).mask for e in masked}
        coco = load_coco(tmp / "dk" / "0" / "coco" / "test.json")
        anns: dict[int, list] = {}
        for a in coco["annotations"]:
            anns.setdefault(a["image_id"], []).append(a)
        dk_coco, dk_yolo, ul = [], [], []
        for im in coco["images"]:
            truth = truths.get(im["name"])
            if truth is None:
                continue
            h, w = truth.shape
            raster = np.zeros_like(truth)
            for a in anns.get(im["id"], []):
                seg = a["segmentation"]
                raster |= decode_rle(seg) if isinstance(seg, dict) else rasterize_coco(seg, h, w)
            dk_coco.append(mask_iou(raster, truth))
            dk_yolo.append(
                _yolo_iou(tmp / "dk" / "0" / "yolo" / "labels" / "test" / f"{im['name']}.txt", truth)
            )
            ul.append(_yolo_iou(tmp / "ul" / "0" / f"{im['name']}.txt", truth))
        n = len(masked)
        print(
            f"{n} masks ({f'generated {args.size}x{args.size}' if args.data is None else data}), "
            f"best of {args.repeat}, defectkit --workers {args.workers}"
        )
        print(
            f"defectkit convert (COCO+YOLO): {n / t_dk:8.1f} masks/s  fidelity COCO {_stats(dk_coco)}; "
            f"YOLO (fillPoly) {_stats(dk_yolo)}"
        )
        print(f"ultralytics (YOLO only)      : {n / t_ul:8.1f} masks/s  fidelity YOLO (fillPoly) {_stats(ul)}")
        print(f"throughput ratio defectkit / ultralytics: {t_ul / t_dk:.2f}x")
        print(
            f"cpu time per mask (median, all processes): defectkit {1000 * c_dk / n:.2f} ms, "
            f"ultralytics {1000 * c_ul / n:.2f} ms, ratio {c_ul / c_dk:.2f}x"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
