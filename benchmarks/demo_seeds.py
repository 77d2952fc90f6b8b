"""``defectkit demo`` over several seeds: every model's key numbers as mean ± spread and minimum,
and the demo's documented learning targets (``defectkit.pipeline.demo.DEMO_TARGETS``) per seed.

    python benchmarks/demo_seeds.py -o runs/demo_seeds                 # seeds 0 1 2, the default demo
    python benchmarks/demo_seeds.py -o runs/demo_seeds --fast --seeds 0

Each seed runs in ``OUT/seed<S>`` (a re-run skips what is up to date). CPU floating point differs
between processors (vector widths, thread counts), so the same seed can give different numbers on
another machine: the spread over seeds is the honest error bar, not one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

KEYS = (("image", "accuracy"), ("image", "f1"), ("image", "auroc"), ("box", "AP50"), ("mask", "iou"))


def run_seed(out: Path, seed: int, fast: bool) -> tuple[dict[str, dict], float]:
    from defectkit.pipeline.demo import DemoConfig, run_demo

    t0 = time.perf_counter()
    cfg, _ = run_demo(DemoConfig(output=out / f"seed{seed}", fast=fast, seed=seed))
    report = json.loads((cfg.report_dir / "report.json").read_text(encoding="utf-8"))
    return {m["name"]: m for m in report["models"]}, time.perf_counter() - t0


def _cell(values: list) -> str:
    vals = [v for v in values if isinstance(v, int | float)]
    if not vals:
        return "–"
    spread = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.3f}±{spread:.3f} (min {min(vals):.3f})"


def main() -> None:
    from defectkit.pipeline.demo import target_misses

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", required=True, type=Path)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--fast", action="store_true", help="the --fast demo (wiring only, no targets)")
    args = ap.parse_args()
    runs, misses = {}, {}
    for seed in args.seeds:
        models, wall = run_seed(args.output, seed, args.fast)
        runs[seed] = models
        misses[seed] = target_misses(models)
        print(f"seed {seed}: {wall:.0f} s wall; targets " + ("met" if not misses[seed] else f"MISSED: {misses[seed]}"))
    names = sorted({n for models in runs.values() for n in models})
    print(f"{'model (synthetic demo)':24s} " + " ".join(f"{m:>28s}" for _, m in KEYS) + f"  seeds {args.seeds}")
    for name in names:
        cells = [_cell([((runs[s].get(name) or {}).get(g) or {}).get(m) for s in runs]) for g, m in KEYS]
        print(f"{name:24s} " + " ".join(f"{c:>28s}" for c in cells))
    summary = {"seeds": args.seeds, "fast": args.fast, "misses": misses,
               "models": {s: {n: {f"{g}.{m}": ((runs[s][n].get(g) or {}).get(m)) for g, m in KEYS}
                              for n in runs[s]} for s in runs}}
    (args.output / "demo_seeds.json").write_text(json.dumps(summary, indent=1, sort_keys=True), encoding="utf-8")


if __name__ == "__main__":
    main()
