"""SAM ``tiny`` and YOLO-World from scratch on REAL images, with and without ``paste``.

The real sample (``../shared/data/mvtec_sample/bottle`` beside the checkout) is split with 3 test
images per defect type moved to train and val fraction 0.2 (train: 167 good + 6 defect images; val:
42 good + 1 per type; test: 5 good + 6 defect). Each model runs through ``defectkit run`` twice: as
is, and with ``paste: {per_type: 40, placement: rotate}`` (120 pasted real defect instances added to
train; val and test unchanged). One table row per model and variant.

    python benchmarks/paste_bench.py -o runs/paste_bench                 # SAM tiny, 1200 steps
    python benchmarks/paste_bench.py -o runs/paste_bench --models sam yolo_world --seeds 0 1 2

A benchmark, never a test: the data is not in the repository.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "mvtec_sample" / "bottle"
SECTIONS = {
    "sam": {"model_type": "tiny", "train": "all", "steps": 1200, "batch_size": 1, "lr": 1.0e-3, "device": "cpu"},
    "yolo_world": {"model": "yolov8n-worldv2.yaml", "steps": 800, "imgsz": 320, "batch": 8, "workers": 0,
                   "device": "cpu", "transpose": 0.5, "overrides": {"nbs": 8, "flipud": 0.5}},
}


def run_variant(data: Path, out: Path, model: str, seed: int, paste: bool) -> dict:
    """Run one pipeline; return the report's row of that model ({name: numbers})."""
    from defectkit.pipeline.chain import PipelineConfig
    from defectkit.pipeline.run import run_pipeline

    section = {**SECTIONS[model], "seed": seed}
    cfg = PipelineConfig(
        output=str(out / f"{model}_s{seed}_{'paste' if paste else 'base'}"), dataset=str(data),
        split={"defects_to_train": 3, "val_fraction": 0.2, "seed": seed},
        paste={"per_type": 40, "placement": "rotate", "seed": seed} if paste else None,
        convert={"formats": ("coco", "yolo"), "check": True}, text_embeddings={"random_seed": seed},
        eval={"bootstrap": 0}, **{model: section},
    )
    run_pipeline(cfg)
    report = json.loads((cfg.report_dir / "report.json").read_text(encoding="utf-8"))
    return {m["name"]: {"box_map50": (m.get("box") or {}).get("AP50"), "mask_iou": (m.get("mask") or {}).get("iou"),
                        "auroc": (m.get("image") or {}).get("auroc")} for m in report["models"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", required=True, type=Path)
    ap.add_argument("--data", type=Path, default=SAMPLE)
    ap.add_argument("--models", nargs="+", default=["sam"], choices=sorted(SECTIONS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = ap.parse_args()
    if not args.data.is_dir():
        ap.error(f"{args.data}: real data folder not found")
    print(f"{'model':28s} {'seed':>4s} {'variant':>7s} {'box mAP50':>10s} {'mask IoU':>9s} {'AUROC':>6s}")
    for model in args.models:
        for seed in args.seeds:
            for paste in (False, True):
                for name, row in run_variant(args.data, args.output, model, seed, paste).items():
                    cells = [f"{row[k]:.3f}" if isinstance(row[k], float) else "–" for k in ("box_map50", "mask_iou", "auroc")]
                    print(f"{name:28s} {seed:4d} {'paste' if paste else 'base':>7s} {cells[0]:>10s} {cells[1]:>9s} {cells[2]:>6s}")


if __name__ == "__main__":
    main()
