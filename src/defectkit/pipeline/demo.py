"""``defectkit demo``: the chain on generated data (stages that exist so far)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    output: str | Path = "demo_out"
    fast: bool = False
    seed: int = 0


def run_demo(config: DemoConfig) -> Path:
    from defectkit.datasets.describe import describe_dataset, format_card
    from defectkit.datasets.mvtec import scan_mvtec
    from defectkit.datasets.split import SplitConfig, make_split
    from defectkit.datasets.synth import SynthConfig, generate_synthetic

    out = Path(config.output)
    synth = SynthConfig(n_train=24, n_test_good=8, n_test_per_defect=8, size=128, seed=config.seed) if config.fast \
        else SynthConfig(seed=config.seed)
    root = generate_synthetic(out / "data", synth)
    card = describe_dataset(scan_mvtec(root))
    sys.stdout.write(format_card(card))
    manifest = make_split(scan_mvtec(root), SplitConfig(defects_to_train=5, val_fraction=0.2, seed=config.seed))
    manifest.save(out / "split.json")
    print(f"split manifest: {out / 'split.json'}")
    return out
