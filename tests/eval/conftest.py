"""Fixtures for the eval tests: a split with defects in val, a LABELS folder (COCO per split,
built here with pycocotools so these tests do not depend on the converters) and prediction
folders of each kind with known outcomes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eval_builders import dets_from_gt, write_labels, write_pred

from defectkit.datasets.io import read_mask
from defectkit.datasets.mvtec import scan_mvtec
from defectkit.datasets.split import SplitConfig, SplitManifest, load_split, make_split


@pytest.fixture(scope="session")
def eval_split(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """split.json with defects in val: 2 per type moved to train, val fraction 0.5 (val: 4 good +
    1 per type; test: 4 good + 2 per type)."""
    manifest = make_split(scan_mvtec(tiny_dataset), SplitConfig(defects_to_train=2, val_fraction=0.5, seed=0))
    return manifest.save(tmp_path_factory.mktemp("eval_split") / "split.json")


@pytest.fixture(scope="session")
def eval_manifest(eval_split: Path) -> SplitManifest:
    return load_split(eval_split, verify=False)


@pytest.fixture(scope="session")
def eval_labels(eval_manifest: SplitManifest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_labels(eval_manifest, tmp_path_factory.mktemp("labels"))


@pytest.fixture(scope="session")
def eval_preds(eval_manifest: SplitManifest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four prediction folders: a perfect segmenter, a detector that misses one test defect and
    fires on one good image, a classifier with noisy scores, an anomaly model with noisy maps."""
    root = tmp_path_factory.mktemp("preds")
    man = eval_manifest
    rng = np.random.default_rng(0)
    out = {
        "perfect-sam": write_pred(
            root / "perfect-sam", "segmenter", man, dets=dets_from_gt(man, score=0.95, with_masks=True)
        )
    }
    dets = dets_from_gt(man, score=0.8, with_masks=False)
    test_ids = [i + 1 for i, e in enumerate(man.entries) if e.split == "test"]
    by_id = {i + 1: e for i, e in enumerate(man.entries)}
    missed = next(d for d in dets if d["image_id"] in test_ids)
    dets.remove(missed)
    good_id = next(i for i in test_ids if by_id[i].label == 0)
    dets.append({"image_id": good_id, "category_id": 1, "bbox": [2, 2, 10, 10], "score": 0.9})
    out["yolo"] = write_pred(root / "yolo", "detector", man, dets=dets)
    used = [e for e in man.entries if e.split != "train"]
    scores = {e.name: float(np.clip(0.35 * e.label + 0.3 + rng.normal(0, 0.2), 0, 1)) for e in used}
    out["resnet"] = write_pred(root / "resnet", "classifier", man, scores=scores)
    maps = {}
    for e in used:
        gt = read_mask(man.mask_path(e)).mask if e.mask else np.zeros((e.height, e.width), bool)
        maps[e.name] = 0.6 * gt + 0.4 * rng.random(gt.shape)
    ae_scores = {n: float(m.max()) for n, m in maps.items()}
    out["ae"] = write_pred(root / "ae", "anomaly", man, scores=ae_scores, maps=maps)
    return out
