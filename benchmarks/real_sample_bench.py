"""Every model with the shipped defaults (and ``configs/mvtec_cpu.yaml``) on REAL MVTec AD images.

The real sample (``../shared/data/mvtec_sample/bottle`` beside the checkout: the complete 209-image
bottle training set and 5 test images per test folder with their masks) is a benchmark input only:
it is never copied into the repository and no test depends on it. Synthetic numbers are far
easier than real ones; this prints the real ones, one row per model, mean and spread over seeds.

    python benchmarks/real_sample_bench.py -o runs/real_bench                     # AE + classifier, seeds 0 1 2
    python benchmarks/real_sample_bench.py -o runs/real_bench --models autoencoder --seeds 0
    python benchmarks/real_sample_bench.py -o runs/real_bench --pipeline          # configs/mvtec_cpu.yaml too

Protocols on the sample (it has only 5 test images per folder, so the course-study split, which
moves 5 per defect type into train, would leave no defect image for test). Like the course-study
split, both keep one defect image per type in val, so thresholds are chosen by max F1 on val:

* AutoEncoder: ``--defects-to-train 2 --val-fraction 0.26`` (trains on the 155 train-good images
  only; val = 54 good + 1 per defect type; test = 5 good + 9 defect).
* classifier: ``--defects-to-train 3 --val-fraction 0.2`` (train = 167 good + 2 per defect type;
  val = 42 good + 1 per type; test = 5 good + 6 defect).
* ``--pipeline``: ``defectkit run configs/mvtec_cpu.yaml`` with the dataset set to the sample and
  ``split.defects_to_train`` 2; the report's rows are printed.

Every number is on a handful of test images: read a difference of one image (0.05-0.07) as noise.
Wall and CPU seconds of training are printed (CPU = process time summed over threads).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "mvtec_sample" / "bottle"
COLUMNS = ("accuracy", "good_recall", "defect_recall", "f1", "auroc")
#: (defects moved to train per defect type, val fraction), by model (see the module docstring)
PROTOCOL = {"autoencoder": (2, 0.26), "classifier": (3, 0.2)}


def _split(data: Path, out: Path, protocol: tuple[int, float], seed: int) -> str:
    from defectkit.datasets.mvtec import scan_mvtec
    from defectkit.datasets.split import SplitConfig, make_split

    k, val = protocol
    path = out / f"split_d{k}_v{val:g}_s{seed}.json"
    if not path.is_file():
        config = SplitConfig(defects_to_train=k, val_fraction=val, seed=seed)
        make_split(scan_mvtec(data), config).save(path)
    return str(path)


def _test_metrics(pred_dir: Path) -> dict[str, float]:
    """Test-split numbers from image_scores.csv: the stored decision (``pred``) and AUROC."""
    import csv

    from defectkit.eval.classification import image_metrics

    with open(pred_dir / "image_scores.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    labels = [int(r["label"]) for r in rows]
    decided = image_metrics(labels, [float(r["pred"]) for r in rows], 0.5)
    ranked = image_metrics(labels, [float(r["score"]) for r in rows], 0.5)
    return {**{k: decided[k] for k in COLUMNS if k != "auroc"}, "auroc": ranked["auroc"], "n": len(rows)}


def run_image_model(
    model: str, data: Path, out: Path, seed: int, device: str, overrides: dict | None = None
) -> dict[str, float]:
    """Train ``model`` with the library defaults (and ``overrides``) on the sample, predict, return
    test metrics."""
    overrides = overrides or {}
    from defectkit.finetune.image.config import AutoencoderConfig, ClassifierConfig, ImagePredictConfig

    if model == "autoencoder":
        from defectkit.finetune.image.predict import predict_autoencoder as predict
        from defectkit.finetune.image.train import train_autoencoder as train

        cls = AutoencoderConfig
    else:
        from defectkit.finetune.image.predict import predict_classifier as predict
        from defectkit.finetune.image.train import train_classifier as train

        cls = ClassifierConfig
    split = _split(data, out, PROTOCOL[model], seed)
    config = cls(split=split, output=str(out / f"{model}_s{seed}"), seed=seed, device=device, **overrides)
    t0, c0 = time.perf_counter(), time.process_time()
    run = train(config, exist_ok=True)  # a re-run of the bench starts its runs over
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    pred = predict(ImagePredictConfig(weights=str(run / "best.pt"), output=str(run / "predictions"), device=device))
    return {**_test_metrics(pred), "wall_s": wall, "cpu_s": cpu}


def run_pipeline_recipe(data: Path, out: Path, seed: int) -> dict[str, dict[str, float]]:
    """``configs/mvtec_cpu.yaml`` on the sample (defects_to_train 2): {model row: numbers}."""
    from defectkit.pipeline.run import load_pipeline_yaml, run_pipeline

    cfg = load_pipeline_yaml(ROOT / "configs" / "mvtec_cpu.yaml")
    split = {**cfg.split, "defects_to_train": 2, "seed": seed}
    cfg = dataclasses.replace(cfg, dataset=str(data), output=str(out / f"pipeline_s{seed}"), split=split)
    t0 = time.perf_counter()
    run_pipeline(cfg)
    report = json.loads((cfg.report_dir / "report.json").read_text(encoding="utf-8"))
    rows = {}
    for m in report.get("models", []):
        img = m.get("image") or {}
        rows[m.get("name", "?")] = {
            **{k: img.get(k) for k in COLUMNS},
            "box_map50": (m.get("box") or {}).get("AP50"),
            "mask_iou": (m.get("mask") or {}).get("iou"),
        }
    rows["(pipeline wall s)"] = {"wall_s": time.perf_counter() - t0}
    return rows


def _fmt(values: list) -> str:
    vals = [v for v in values if isinstance(v, int | float)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.3f}"
    return f"{statistics.mean(vals):.3f}±{statistics.stdev(vals):.3f}"


def print_table(results: dict[str, list[dict[str, float]]]) -> None:
    keys = (*COLUMNS, "box_map50", "mask_iou", "wall_s")
    print(f"{'model (real sample)':36s} " + " ".join(f"{k:>13s}" for k in keys) + "  seeds")
    for name, runs in results.items():
        cells = " ".join(f"{_fmt([r.get(k) for r in runs]):>13s}" for k in keys)
        print(f"{name:36s} {cells}  {len(runs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", required=True, help="work folder (splits, runs, results.json)")
    ap.add_argument("--data", type=Path, default=SAMPLE, help=f"real category folder (default {SAMPLE})")
    ap.add_argument("--models", nargs="+", default=["autoencoder", "classifier"], choices=sorted(PROTOCOL))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--pipeline", action="store_true", help="also run configs/mvtec_cpu.yaml on the sample")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if not args.data.is_dir():
        ap.error(f"{args.data}: real data folder not found (the sample lies in ../shared/data beside the checkout)")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, float]]] = {}
    for model in args.models:
        for seed in args.seeds:
            row = run_image_model(model, args.data, out, seed, args.device)
            results.setdefault(f"{model} (CLI defaults)", []).append(row)
            print(f"{model} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if v is not None))
    if args.pipeline:
        for seed in args.seeds:
            for name, row in run_pipeline_recipe(args.data, out, seed).items():
                results.setdefault(f"mvtec_cpu.yaml: {name}", []).append(row)
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True), encoding="utf-8")
    print_table(results)


if __name__ == "__main__":
    main()
