"""Train the ResNet classifier and the AutoEncoder on one MVTec-style category and print their
test numbers next to the course study's (homework) rows.
Wall and CPU seconds of training are printed (CPU = process time summed over threads).

    python benchmarks/image_level_bench.py --split runs/split.json -o runs/bench [--fast]
    python benchmarks/image_level_bench.py --synthetic -o runs/bench      # default synthetic data

``--synthetic`` writes the default synthetic category (``defectkit synth`` defaults) and the
homework split (5 defects per type into train) under OUT first. Timings include data loading and
depend on the machine's load; they are printed, not asserted.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

#: the course study's rows on real MVTec bottle (accuracy, defect F1); "-" where it gave none
HOMEWORK = {"AutoEncoder": (0.43, 0.42), "ResNet + weighted CE + dropout + wd": (0.91, 0.93)}


def _metrics(pred_dir: Path) -> dict[str, float]:
    import numpy as np

    from defectkit.finetune.image.metrics import val_metrics

    lines = (pred_dir / "image_scores.csv").read_text().splitlines()
    rows = [r for r in csv.DictReader(lines) if r["split"] == "test"]
    labels = np.array([int(r["label"]) for r in rows])
    scores = np.array([float(r["score"]) for r in rows])
    pred = np.array([int(r["pred"]) for r in rows])
    m = val_metrics(labels, scores, 0.5)  # AUROC only; the rest from the stored pred column
    m2 = val_metrics(labels, pred.astype(float), 0.5)
    return {**m2, "auroc": m["auroc"], "n": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", help="split manifest (made with 'defectkit split ... --defects-to-train 5')")
    ap.add_argument("--synthetic", action="store_true", help="generate the default synthetic data + split")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--fast", action="store_true", help="few epochs (smoke run)")
    ap.add_argument("--cls-epochs", type=int, default=None)
    ap.add_argument("--ae-epochs", type=int, default=None)
    ap.add_argument("--image-size", type=int, default=None, help="classifier input size")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from defectkit.finetune.image.config import AutoencoderConfig, ClassifierConfig, ImagePredictConfig
    from defectkit.finetune.image.predict import predict_autoencoder, predict_classifier
    from defectkit.finetune.image.train import train_autoencoder, train_classifier

    out = Path(args.output)
    split = args.split
    if args.synthetic:
        from defectkit.datasets.mvtec import scan_mvtec
        from defectkit.datasets.split import SplitConfig, make_split
        from defectkit.datasets.synth import SynthConfig, generate_synthetic

        root = generate_synthetic(out / "data", SynthConfig())
        split = str(make_split(scan_mvtec(root), SplitConfig(defects_to_train=5)).save(out / "split.json"))
    if not split:
        ap.error("give --split or --synthetic")
    # --image-size is the classifier's; the AutoEncoder keeps 128 px (it fails at 64 px)
    cls_kw = {"epochs": args.cls_epochs or (6 if args.fast else None), "image_size": args.image_size}
    ae_kw = {"epochs": args.ae_epochs or (8 if args.fast else None)}
    cls_kw = {k: v for k, v in cls_kw.items() if v is not None}
    ae_kw = {k: v for k, v in ae_kw.items() if v is not None}
    runs = {  # both with the library defaults (see ClassifierConfig / AutoencoderConfig)
        "ResNet18 from scratch (defaults: weighted CE)": (
            train_classifier,
            predict_classifier,
            ClassifierConfig(split=split, output=str(out / "resnet18"), device=args.device, **cls_kw),
        ),
        "AutoEncoder (defaults: L2, 128 px)": (
            train_autoencoder,
            predict_autoencoder,
            AutoencoderConfig(split=split, output=str(out / "autoencoder"), device=args.device, **ae_kw),
        ),
    }
    print(
        f"{'model':48s} {'acc':>5s} {'goodR':>5s} {'defR':>5s} {'F1':>5s} {'AUROC':>5s} {'wall s':>7s} {'cpu s':>7s}"
    )
    for name, (train, predict, config) in runs.items():
        t0, c0 = time.perf_counter(), time.process_time()
        run = train(config)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        pred = predict(
            ImagePredictConfig(
                weights=str(run / "best.pt"), output=str(run / "predictions"), split=split, device=args.device
            )
        )
        m = _metrics(pred)
        print(
            f"{name:48s} {m['accuracy']:5.3f} {m['good_recall']:5.3f} {m['defect_recall']:5.3f} "
            f"{m['f1']:5.3f} {m['auroc']:5.3f} {seconds:7.1f} {cpu:7.1f}"
        )
    for name, (acc, f1) in HOMEWORK.items():
        print(f"{'homework: ' + name:48s} {acc:5.2f} {'-':>5s} {'-':>5s} {f1:5.2f} {'-':>5s}")


if __name__ == "__main__":
    main()
