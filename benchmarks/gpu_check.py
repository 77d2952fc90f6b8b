"""GPU check: the figures the first CUDA machine should measure, in at most ~5 minutes.

    python benchmarks/gpu_check.py [--device cuda:0] [--out DIR] [--smoke-cpu]

On a CUDA machine, with random-weight checkpoints in the official formats made on the spot
(``sam_vit_b_01ec64.pth``, ``yolov8s-worldv2.pt``, ``resnet18-f37072fd.pth``; timing only, no
download) and generated bottle-like data, it measures and prints:

1. SAM vit_b image-encoder throughput (images/s), fp32 and bf16 autocast;
2. one cached SAM decoder epoch (``defectkit finetune sam``: autocast + GradScaler on CUDA), the
   embedding cache filled by a first run;
3. one YOLO-World s epoch at 640 px (``defectkit finetune yolo-world``);
4. one ResNet18 classifier epoch with AMP (float16 autocast + GradScaler, torchvision model built
   by defectkit from the official-format file) next to defectkit's own fp32 epoch;
5. a 1-process ``torchrun`` DDP classifier epoch (``torchrun -m defectkit finetune classifier``).

Each part prints its figure or its error and the next part runs; the GPU's name heads the output.
On a machine without CUDA it prints ``no CUDA device: nothing measured`` and exits 0.
``--smoke-cpu`` runs every part on the CPU at toy sizes (SAM tiny, 64 px YOLO, 32 px classifier):
a check of the script itself, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sizes:
    device: str
    sam_type: str  # vit_b on a GPU; tiny for --smoke-cpu
    sam_images: int  # images per encoder timing
    synth_size: int
    synth_per_defect: int
    yolo_model: str
    yolo_imgsz: int
    yolo_batch: int
    cls_size: int
    cls_batch: int


GPU = Sizes("cuda", "vit_b", 16, 640, 10, "yolov8s-worldv2", 640, 16, 224, 32)
SMOKE = Sizes("cpu", "tiny", 2, 64, 2, "yolov8n-worldv2", 64, 8, 32, 4)


def _timed(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def make_data(root: Path, s: Sizes) -> dict[str, Path]:
    """Generated bottle-like data, the course-study split and COCO + YOLO labels."""
    from defectkit.converters import ConvertConfig, convert_dataset
    from defectkit.datasets.mvtec import scan_mvtec
    from defectkit.datasets.split import SplitConfig, make_split
    from defectkit.datasets.synth import SynthConfig, generate_synthetic

    n = s.synth_per_defect
    data = generate_synthetic(root / "data", SynthConfig(n_train=4 * n, n_test_good=n, n_test_per_defect=n,
                                                         size=s.synth_size, seed=0))
    split = make_split(scan_mvtec(data), SplitConfig(defects_to_train=max(1, n // 2), seed=0))
    split_path = split.save(root / "split.json")
    labels = root / "labels"
    convert_dataset(ConvertConfig(dataset=str(data), split=str(split_path), output=str(labels),
                                  formats=("coco", "yolo")))
    return {"data": data, "split": split_path, "labels": labels}


def sam_throughput(root: Path, s: Sizes, sync) -> str:
    """Encoder images/s, fp32 and bf16, from an official-format state dict loaded by defectkit."""
    import torch

    from defectkit.finetune.sam.model import build_sam_model

    ckpt = root / ("sam_vit_b_01ec64.pth" if s.sam_type == "vit_b" else "sam_tiny.pth")
    torch.manual_seed(0)
    torch.save(build_sam_model(s.sam_type).state_dict(), ckpt)  # the official layout: a plain state dict
    sam = build_sam_model(s.sam_type, ckpt).to(s.device).eval()
    size = sam.image_encoder.img_size
    x = torch.randn(s.sam_images, 3, size, size, device=s.device)
    out = []
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        def run(dtype=dtype):
            with torch.no_grad(), torch.autocast(s.device.split(":")[0], dtype=dtype or torch.float32,
                                                 enabled=dtype is not None):
                for i in range(s.sam_images):
                    sam.image_encoder(x[i : i + 1])
        run()  # warm-up (cuDNN autotune, allocator)
        out.append(f"{name} {s.sam_images / _timed(run, sync):.2f} images/s")
    return f"SAM {s.sam_type} encoder ({size}x{size}, batch 1): " + ", ".join(out)


def sam_cached_epoch(root: Path, paths: dict, s: Sizes, sync) -> str:
    """A cold run fills the embedding cache; a second run's single epoch is the cached one."""
    from defectkit.finetune.sam.train import SamTrainConfig, train_sam

    ckpt = root / ("sam_vit_b_01ec64.pth" if s.sam_type == "vit_b" else "sam_tiny.pth")
    coco = paths["labels"] / "coco" / "train.json"
    cache = root / "sam_cache"

    def run(name: str):
        return train_sam(SamTrainConfig(coco=str(coco), output=str(root / name), model_type=s.sam_type,
                                        checkpoint=str(ckpt), train="decoder", epochs=1, batch_size=8,
                                        device=s.device, cache_dir=str(cache), augment="none"))

    cold = _timed(lambda: run("sam_cold"), sync)
    warm = _timed(lambda: run("sam_warm"), sync)
    n = len(json.loads(coco.read_text())["images"])
    return (f"SAM {s.sam_type} decoder epoch, autocast + GradScaler, {n} train images: cached {warm:.1f} s "
            f"(the run filling the cache: {cold:.1f} s)")


def yolo_epoch(root: Path, paths: dict, s: Sizes, sync) -> str:
    import torch

    from defectkit.finetune.yolo_world.env import import_ultralytics
    from defectkit.finetune.yolo_world.text_embeddings import TextEmbeddings, save_text_embeddings
    from defectkit.finetune.yolo_world.train import YoloFinetuneConfig, finetune_yolo

    import_ultralytics()
    from ultralytics import YOLOWorld

    weights = root / f"{s.yolo_model}.pt"
    YOLOWorld(f"{s.yolo_model}.yaml").save(str(weights))  # random weights, ultralytics' own .pt format
    names = ("broken large", "broken small", "contamination")
    vecs = torch.nn.functional.normalize(torch.randn(len(names), 512, generator=torch.Generator().manual_seed(0)))
    emb = save_text_embeddings(TextEmbeddings(names, vecs, model="random"), root / "text.pt")
    device = "0" if s.device.startswith("cuda") else "cpu"
    cfg = YoloFinetuneConfig(data=paths["labels"] / "yolo" / "data.yaml", model=str(weights), output=root / "yolo",
                             text_embeddings=emb, epochs=1, imgsz=s.yolo_imgsz, batch=s.yolo_batch, device=device,
                             workers=4 if device != "cpu" else 0, overrides={"plots": False, "val": False})
    seconds = _timed(lambda: finetune_yolo(cfg), sync)
    return f"YOLO-World {s.yolo_model} one epoch at {s.yolo_imgsz} px (batch {s.yolo_batch}): {seconds:.1f} s"


def classifier_epochs(root: Path, paths: dict, s: Sizes, sync) -> str:
    """defectkit's fp32 epoch, then the same model and data in a float16 autocast + GradScaler loop."""
    import torch
    from torchvision import models

    from defectkit.datasets.split import load_split
    from defectkit.datasets.torch_data import ManifestDataset
    from defectkit.finetune.image.config import ClassifierConfig
    from defectkit.finetune.image.model import build_classifier
    from defectkit.finetune.image.train import train_classifier

    official = root / "resnet18-f37072fd.pth"
    torch.save(models.resnet18(weights=None).state_dict(), official)  # torchvision's file layout
    cfg = ClassifierConfig(split=str(paths["split"]), output=str(root / "cls"), weights=str(official), epochs=1,
                           image_size=s.cls_size, batch_size=s.cls_batch, device=s.device, precise_bn=False)
    fp32 = _timed(lambda: train_classifier(cfg), sync)
    model = build_classifier("resnet18", 2, weights=str(official)).to(s.device).train()
    ds = ManifestDataset(load_split(paths["split"]), "train", image_size=s.cls_size, normalize=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=s.cls_batch, shuffle=True, num_workers=4 if
                                         s.device != "cpu" else 0, drop_last=True)  # BatchNorm: no batch of 1
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    use_amp = s.device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    def epoch():
        for batch in loader:
            x, y = batch["image"].to(s.device, non_blocking=True), batch["target"].to(s.device)
            with torch.autocast(s.device.split(":")[0], dtype=torch.float16, enabled=use_amp):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    epoch()  # warm-up: cuDNN autotune and the first-epoch image decoding
    amp = _timed(epoch, sync)
    return (f"ResNet18 classifier epoch at {s.cls_size} px, {len(ds)} images: defectkit fp32 (incl. setup and "
            f"val) {fp32:.1f} s; training loop with AMP {amp:.2f} s")


def ddp_epoch(root: Path, paths: dict, s: Sizes, sync) -> str:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    cmd = [torchrun, "--standalone", "--nproc_per_node", "1", "-m", "defectkit", "-q", "finetune", "classifier",
           "--split", str(paths["split"]), "-o", str(root / "cls_ddp"), "--weights", "none", "--epochs", "1",
           "--image-size", str(s.cls_size), "--batch-size", str(s.cls_batch), "--device", s.device]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"torchrun exit {done.returncode}: {(done.stderr or done.stdout).strip()[-400:]}")
    return f"torchrun 1-process DDP classifier epoch (process start included): {seconds:.1f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda:0", help="CUDA device to measure (default cuda:0)")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    ap.add_argument("--smoke-cpu", action="store_true", help="run every part on the CPU at toy sizes (default: off)")
    args = ap.parse_args(argv)

    import torch

    if args.smoke_cpu:
        sizes, sync = SMOKE, (lambda: None)
        print("smoke run on the CPU at toy sizes: checks the script, measures nothing")
    elif not torch.cuda.is_available():
        print("no CUDA device: nothing measured")
        return 0
    else:
        sizes = GPU.__class__(**{**GPU.__dict__, "device": args.device})
        sync = torch.cuda.synchronize
        props = torch.cuda.get_device_properties(args.device)
        print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB; torch {torch.__version__}, "
              f"CUDA {torch.version.cuda}")
    from defectkit.progress import set_progress_enabled
    from defectkit.runtime import setup_logging

    setup_logging(-1)  # warnings only: ultralytics' and defectkit's step-by-step lines would bury the figures
    set_progress_enabled(False)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    root = args.out or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    root.mkdir(parents=True, exist_ok=True)
    failed = 0
    try:
        t0 = time.perf_counter()
        paths = make_data(root, sizes)
        print(f"data: generated {sizes.synth_size} px images in {time.perf_counter() - t0:.1f} s")
        parts = [lambda: sam_throughput(root, sizes, sync), lambda: sam_cached_epoch(root, paths, sizes, sync),
                 lambda: yolo_epoch(root, paths, sizes, sync), lambda: classifier_epochs(root, paths, sizes, sync),
                 lambda: ddp_epoch(root, paths, sizes, sync)]
        for part in parts:
            try:
                print(part(), flush=True)
            except Exception as exc:  # report and go on: one broken part must not hide the others
                failed += 1
                print(f"FAILED: {type(exc).__name__}: {exc}", flush=True)
        print(f"total {time.perf_counter() - t0:.0f} s")
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
