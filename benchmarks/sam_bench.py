"""SAM fine-tuning benchmark.

1. ``vit_b`` (random weights: timing only) on a few 900x900 synthetic images: one training epoch
   with the image encoder in the loop (what a naive loop pays every epoch) versus one epoch on the
   warm embedding cache (with defectkit's decoder pass and with segment-anything's forward), and
   the cache's bytes per image. Target: cached epoch >= 100x faster. The ratio falls as the
   instances per image grow (the encoder runs once per image, the decoder once per instance):
   the default 3 images (one per defect type) have 4 instances, ``--images 2`` has 3 (1.5 per
   image); the real MVTec bottle sample in ../shared has 18 instances on 15 defect images.
2. ``tiny`` on the default synthetic data (256 px, split with --defects-to-train 5): the demo's
   settings, CPU and wall time of training, val / test mask IoU with ground-truth boxes (and the
   untrained model's). Target: test IoU >= 0.6 with <= 150 s of training CPU time.
3. ``tiny_fast``: the ``--fast`` demo (128 px, 30 train, 10 test-good, 10 per defect). Target:
   <= 40 s of training CPU time, test IoU clearly above the untrained model's.
4. ``decoder_ops`` (not in ``all``): where one vit_b decoder training step (forward, loss,
   backward for ``--prompts`` boxes on one embedding) spends its CPU time, per aten op, with
   segment-anything's ``MaskDecoder.forward`` and with defectkit's pass. CPU time per op (not
   torch.profiler's wall time, which other jobs on the machine inflate).

    python benchmarks/sam_bench.py [--part vit_b|tiny|tiny_fast|decoder_ops|all] [--images 3]
        [--prompts 1] [--threads 1] [--out DIR]

On a CPU shared with other jobs use ``--threads 1``: torch's intra-op threads otherwise spin
against each other (a vit_b decoder step measured 0.4 s with 1 thread, 1.0-3.7 s with 2). The
vit_b part reports wall and process CPU time; with one thread and other jobs on the machine, the
CPU-time ratio is the stable one (wall time depends on what else ran during each epoch).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

#: the demo's settings for ``defectkit finetune sam --model-type tiny`` (see docs/guide/sam.md):
#: ``--train all --epochs 60 --batch-size 1 --lr 1e-3`` (augment "auto" = 8 flips/transposes)
TINY_DEMO = {"train": "all", "epochs": 60, "lr": 1e-3, "batch_size": 1, "warmup_steps": 20, "box_jitter": 0.1}
#: the ``--fast`` demo: the same with ``--epochs 25``
TINY_FAST = {**TINY_DEMO, "epochs": 25}


def _labels(
    out: Path, size: int, n_defect: int, k: int, n_train: int | None = None, n_good: int | None = None
) -> Path:
    from defectkit.converters.convert import ConvertConfig, convert_dataset
    from defectkit.datasets.mvtec import scan_mvtec
    from defectkit.datasets.split import SplitConfig, make_split
    from defectkit.datasets.synth import SynthConfig, generate_synthetic

    root = generate_synthetic(
        out / "data",
        SynthConfig(
            n_train=n_train or max(4, 3 * k),
            n_test_good=n_good if n_good is not None else (2 if size > 256 else 20),
            n_test_per_defect=n_defect,
            size=size,
            seed=0,
        ),
    )
    make_split(scan_mvtec(root), SplitConfig(defects_to_train=k)).save(  # `defectkit split` defaults
        out / "split.json"
    )
    convert_dataset(
        ConvertConfig(
            dataset=str(root), split=str(out / "split.json"), output=str(out / "labels"), formats=("coco",)
        )
    )
    return out / "labels"


def _timed(fn) -> tuple[float, float]:
    """(wall s, process CPU s) of ``fn()``."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def bench_vit_b(out: Path, n_images: int, cached_epochs: int = 5) -> dict:
    """Epoch times of decoder training on ``n_images`` 900x900 images: encoder in the loop (once per
    image per epoch, as a naive loop without a cache pays), filling the cache, and on the warm cache
    (median of ``cached_epochs`` before and as many after the encoder-in-loop epoch) with the fast
    decoder and (median of ``cached_epochs``) with the library's ``MaskDecoder.forward``.
    Every epoch does the same training work, with ``defectkit finetune sam``'s defaults: batches of
    ``SamTrainConfig.batch_size`` images (one optimiser step each), each image's instances in one
    decoder call.
    """
    import statistics

    import numpy as np
    import torch

    from defectkit.finetune.sam import engine as eng
    from defectkit.finetune.sam.cache import EmbeddingCache, encoder_fingerprint
    from defectkit.finetune.sam.data import load_coco_samples
    from defectkit.finetune.sam.model import build_sam_model
    from defectkit.finetune.sam.train import (
        SamTrainConfig,
        make_embedder,
        make_optimizer,
        trainable_parameters,
    )

    labels = _labels(out / "vit_b", 900, n_defect=max(1, math.ceil(n_images / 3)), k=0)
    samples = load_coco_samples(labels / "coco" / "test.json")[:n_images]
    torch.manual_seed(0)
    sam = build_sam_model("vit_b")
    device = torch.device("cpu")
    cache = EmbeddingCache(
        out / "vit_b" / "cache", model_type="vit_b", encoder_hash=encoder_fingerprint(sam), image_size=1024
    )
    params = trainable_parameters(sam, "decoder")
    targets = eng.lowres_targets(samples, 1024, 256)
    opt = make_optimizer(params, 1e-5, 0.01, device)  # what train_sam uses
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    frozen = make_embedder(sam, "decoder", cache, device)  # cache-backed
    in_loop = make_embedder(sam, "all", None, device)  # runs the encoder every call

    def encoder_in_loop(sample, train):  # the encoder is frozen (no_grad), it just runs every epoch
        return in_loop(sample, train=False)

    optim, data = eng.Optimisation(opt, sched, params), eng.TrainData(samples, targets)

    def epoch(embed, fast: bool = True) -> tuple[float, float]:
        cfg = eng.EpochConfig(batch_size=SamTrainConfig.batch_size, image_size=1024, fast=fast)  # CLI default
        return _timed(lambda: eng.train_one_epoch(sam, optim, data, embed, cfg, np.random.default_rng(0)))

    def median(runs) -> tuple[float, float]:
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    sam.mask_decoder.train()
    fill = epoch(frozen)  # cold cache: encodes once per image and stores
    # cached epochs before and after the long encoder-in-loop one: a short burst of load on a shared
    # machine then sways fewer of them
    before = [epoch(frozen) for _ in range(cached_epochs)]
    loop = epoch(encoder_in_loop)
    cached = median(before + [epoch(frozen) for _ in range(cached_epochs)])
    # reference: segment-anything's MaskDecoder.forward and get_dense_pe (cpu_fast_path off)
    cached_lib = median([epoch(frozen, fast=False) for _ in range(cached_epochs)])
    return {
        "images": len(samples),
        "instances_per_image": [len(s.boxes) for s in samples],
        "epoch_encoder_in_loop_s": loop[0],
        "epoch_encoder_in_loop_cpu_s": loop[1],
        "epoch_filling_cache_s": fill[0],
        "epoch_cached_s": cached[0],
        "epoch_cached_cpu_s": cached[1],
        "epoch_cached_library_decoder_s": cached_lib[0],
        "epoch_cached_library_decoder_cpu_s": cached_lib[1],
        "speedup": loop[0] / cached[0],
        "speedup_cpu": loop[1] / cached[1],
        "speedup_cpu_library_decoder": loop[1] / cached_lib[1],
        "encoder_calls": cache.misses,
        "cache_bytes_per_image": sum(cache.path(cache.key(s.path)).stat().st_size for s in samples)
        / max(1, len(samples)),
    }


def bench_tiny(out: Path, fast: bool = False) -> dict:
    import torch

    from defectkit.finetune.sam import engine as eng
    from defectkit.finetune.sam.data import load_coco_samples
    from defectkit.finetune.sam.model import build_sam_model, sam_model_registry
    from defectkit.finetune.sam.train import SamTrainConfig, make_embedder, train_sam

    if fast:
        out, settings = out / "tiny_fast", TINY_FAST
        labels = _labels(out, 128, n_defect=10, k=5, n_train=30, n_good=10)
    else:
        out, settings = out / "tiny", TINY_DEMO
        labels = _labels(out, 256, n_defect=20, k=5, n_train=60, n_good=20)
    cfg = SamTrainConfig(
        coco=str(labels / "coco" / "train.json"),
        val_coco=str(labels / "coco" / "val.json"),
        output=str(out / "run"),
        model_type="tiny",
        **settings,
    )
    test_samples = load_coco_samples(labels / "coco" / "test.json")
    torch.manual_seed(cfg.seed)
    untrained = build_sam_model("tiny")  # the seeded init train_sam starts from
    before = eng.evaluate(untrained, test_samples, make_embedder(untrained, "all", None, torch.device("cpu")))
    c0, t0 = time.process_time(), time.perf_counter()
    summary = train_sam(cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    best = sam_model_registry["tiny"](checkpoint=out / "run" / "best.pt")
    test = eng.evaluate(best, test_samples, make_embedder(best, "all", None, torch.device("cpu")))
    return {
        "settings": settings,
        "train_wall_s": wall,
        "train_cpu_s": cpu,
        "untrained_test_iou": before["iou"],
        "best_val_iou": summary["best_val_iou"],
        "val_instances": sum(len(s.boxes) for s in load_coco_samples(labels / "coco" / "val.json")),
        "test_iou": test["iou"],
        "test_dice": test["dice"],
        "test_iou_per_type": {k[4:]: v for k, v in test.items() if k.startswith("iou/")},
    }


#: the ops that do the multiply-adds (the rest moves memory or is elementwise)
DENSE_OPS = ("aten.mm", "aten.addmm", "aten.bmm", "aten.convolution", "aten.convolution_backward")


def bench_decoder_ops(n_prompts: int, reps: int = 3, top: int = 12) -> dict:
    """CPU seconds per decoder training step, in total, in matrix products and in the ``top`` ops,
    for the library's forward and defectkit's pass (vit_b decoder, random weights)."""
    import collections

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from defectkit.finetune.sam import engine as eng
    from defectkit.finetune.sam.model import build_sam_model
    from defectkit.finetune.sam.train import trainable_parameters

    class CpuPerOp(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seconds: dict[str, float] = collections.defaultdict(float)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            t0 = time.process_time()
            out = func(*args, **(kwargs or {}))
            self.seconds[str(func.overloadpacket)] += time.process_time() - t0
            return out

    torch.manual_seed(0)
    sam = build_sam_model("vit_b")
    params = trainable_parameters(sam, "decoder")
    emb = torch.randn(1, 256, 64, 64)
    boxes = torch.tensor([[100.0, 100.0, 400.0, 380.0]]) + 40.0 * torch.arange(n_prompts)[:, None]
    target = (torch.rand(n_prompts, 256, 256, generator=torch.Generator().manual_seed(0)) > 0.9).float()

    def step(fast: bool) -> None:
        for p in params:
            p.grad = None
        logits, iou = eng.decode(sam, emb, boxes, fast=fast)
        eng.mask_loss(logits, target, iou)[0].mean().backward()

    report = {}
    for name, fast in (("library", False), ("defectkit", True)):
        step(fast)  # warm-up
        timer = CpuPerOp()
        with timer:
            for _ in range(reps):
                step(fast)
        per_op = {k: v / reps for k, v in sorted(timer.seconds.items(), key=lambda kv: -kv[1])}
        report[name] = {
            "step_cpu_s": sum(per_op.values()),
            "matmul_conv_cpu_s": sum(v for k, v in per_op.items() if k in DENSE_OPS),
            "top_ops_cpu_s": dict(list(per_op.items())[:top]),
        }
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("vit_b", "tiny", "tiny_fast", "decoder_ops", "all"), default="all")
    ap.add_argument("--images", type=int, default=3, help="900x900 images for the vit_b part (default 3)")
    ap.add_argument("--prompts", type=int, default=1, help="boxes per step for decoder_ops (default 1)")
    ap.add_argument("--out", default=None, help="work folder (default: a temporary folder)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    import torch

    from defectkit.runtime import reuse_freed_memory

    if args.threads:
        torch.set_num_threads(args.threads)
    reuse_freed_memory()  # what `defectkit finetune sam` does on a CPU (for every part, both epoch kinds)

    out = Path(args.out or tempfile.mkdtemp(prefix="sam_bench_"))
    report = {"torch_threads": torch.get_num_threads()}
    if args.part in ("vit_b", "all"):
        r = report["vit_b"] = bench_vit_b(out, args.images)
        print(
            f"vit_b, {r['images']} images 900x900 ({sum(r['instances_per_image'])} instances): "
            f"encoder-in-loop epoch {r['epoch_encoder_in_loop_s']:.1f} s wall / "
            f"{r['epoch_encoder_in_loop_cpu_s']:.1f} s CPU; cached epoch {r['epoch_cached_s']:.3f} s wall / "
            f"{r['epoch_cached_cpu_s']:.3f} s CPU -> {r['speedup']:.0f}x wall, {r['speedup_cpu']:.0f}x CPU "
            f"(target >= 100x; library decoder: {r['epoch_cached_library_decoder_cpu_s']:.3f} s CPU, "
            f"{r['speedup_cpu_library_decoder']:.0f}x); cache {r['cache_bytes_per_image'] / 2**20:.2f} MiB/image, "
            f"encoder runs {r['encoder_calls']}"
        )
    for part, target in (("tiny", 150), ("tiny_fast", 40)):
        if args.part in (part, "all"):
            r = report[part] = bench_tiny(out, fast=part == "tiny_fast")
            print(
                f"{part}: training {r['train_cpu_s']:.0f} s CPU (target <= {target} s), {r['train_wall_s']:.0f} s "
                f"wall; best val IoU {r['best_val_iou']:.3f} on {r['val_instances']} instances; test IoU "
                f"{r['test_iou']:.3f} (untrained {r['untrained_test_iou']:.3f}; target >= 0.6 for tiny)"
            )
    if args.part == "decoder_ops":
        r = report["decoder_ops"] = bench_decoder_ops(args.prompts)
        for name, v in r.items():
            print(
                f"{name}: {v['step_cpu_s'] * 1000:.0f} ms CPU per step with {args.prompts} box(es), "
                f"{v['matmul_conv_cpu_s'] * 1000:.0f} ms in matrix products and convolutions; top ops (ms): "
                + ", ".join(f"{k[5:]} {t * 1000:.1f}" for k, t in v["top_ops_cpu_s"].items())
            )
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
