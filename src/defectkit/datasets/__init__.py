"""MVTec-AD-style datasets (MVTec AD, MVTec AD 2, VisA): scanning and validation, the dataset card, the split manifest, and
the synthetic generator. The PyTorch ``Dataset`` lives in :mod:`defectkit.datasets.torch_data`
(imported separately so this package does not import torch)."""

from defectkit.datasets.layouts import LAYOUTS, detect_layout, scan_dataset
from defectkit.datasets.mvtec import DatasetIndex, ImageRecord, scan_mvtec
from defectkit.datasets.split import SplitConfig, SplitEntry, SplitManifest, load_split, make_split
from defectkit.datasets.split_all import make_split_all
from defectkit.datasets.synth import SynthConfig, generate_synthetic

__all__ = [
    "DatasetIndex",
    "ImageRecord",
    "scan_mvtec",
    "LAYOUTS",
    "detect_layout",
    "scan_dataset",
    "SplitConfig",
    "SplitEntry",
    "SplitManifest",
    "load_split",
    "make_split",
    "make_split_all",
    "SynthConfig",
    "generate_synthetic",
]
