"""MVTec-AD-style datasets: scanning and validation, the dataset card, the split manifest, and
the synthetic generator. The PyTorch ``Dataset`` lives in :mod:`defectkit.datasets.torch_data`
(imported separately so this package does not import torch)."""

from defectkit.datasets.mvtec import DatasetIndex, ImageRecord, scan_mvtec
from defectkit.datasets.split import SplitConfig, SplitEntry, SplitManifest, load_split, make_split
from defectkit.datasets.synth import SynthConfig, generate_synthetic

__all__ = [
    "DatasetIndex",
    "ImageRecord",
    "scan_mvtec",
    "SplitConfig",
    "SplitEntry",
    "SplitManifest",
    "load_split",
    "make_split",
    "SynthConfig",
    "generate_synthetic",
]
