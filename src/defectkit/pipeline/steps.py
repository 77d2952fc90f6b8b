"""The stages of the chain, each a thin call into one library function.

Every function takes the :class:`PipelineConfig` and writes into the folder the config derives
for it; none of them needs another stage's Python objects, only its files.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from defectkit.errors import InputError
from defectkit.fileio import atomic_write_json, atomic_write_text, read_yaml
from defectkit.pipeline.chain import PipelineConfig, build

log = logging.getLogger(__name__)

#: display names used in the report, by prediction folder key
MODEL_NAMES = {
    "yolo_world": "YOLO-World",
    "sam_gt": "SAM (GT boxes)",
    "sam_yolo_world": "YOLO-World + SAM",
    "classifier": "ResNet",
    "autoencoder": "AutoEncoder",
}


def fresh_dir(path: Path) -> Path:
    """Make ``path`` empty for a re-run, keeping the previous result as ``<path>.prev``."""
    if path.exists():
        prev = path.with_name(path.name + ".prev")
        if prev.exists():
            shutil.rmtree(prev)
        path.rename(prev)
        log.info("kept the previous %s as %s", path.name, prev)
    return path


def synth(cfg: PipelineConfig) -> None:
    from defectkit.datasets.synth import SynthConfig, generate_synthetic

    generate_synthetic(cfg.out / "data", build(SynthConfig, cfg.synth or {}, "synth"))


def describe(cfg: PipelineConfig) -> None:
    from defectkit.datasets.describe import describe_dataset, format_card
    from defectkit.datasets.layouts import scan_dataset

    card = describe_dataset(scan_dataset(cfg.data_dir))
    atomic_write_json(cfg.out / "describe.json", card)
    atomic_write_text(cfg.out / "describe.txt", format_card(card))


def split(cfg: PipelineConfig) -> None:
    from defectkit.datasets.layouts import scan_dataset
    from defectkit.datasets.split import SplitConfig, make_split

    manifest = make_split(scan_dataset(cfg.data_dir), build(SplitConfig, cfg.split, "split"))
    manifest.save(cfg.made_split_path)


def paste(cfg: PipelineConfig) -> None:
    from defectkit.datasets.paste import PasteConfig, paste_split

    paste_split(build(PasteConfig, dict(cfg.paste or {}), "paste", split=str(cfg.made_split_path),
                      output=str(cfg.paste_dir)))


def convert(cfg: PipelineConfig) -> None:
    from defectkit.converters import ConvertConfig, convert_dataset

    section = dict(cfg.convert)
    if "names" in section and isinstance(section["names"], dict):
        section["names"] = tuple(sorted(section["names"].items()))
    section.setdefault("check", True)
    convert_dataset(build(ConvertConfig, section, "convert", dataset=str(cfg.labelled_dir),
                          split=str(cfg.split_path), output=str(cfg.labels)))


def _yolo_names(labels: Path) -> tuple[str, ...]:
    data = read_yaml(labels / "yolo" / "data.yaml", "YOLO data.yaml")
    names = data["names"]
    return tuple(names[i] for i in sorted(names)) if isinstance(names, dict) else tuple(names)


def text_embeddings(cfg: PipelineConfig) -> None:
    """Text features for the YOLO class names: real CLIP, or seeded random unit vectors."""
    section = dict(cfg.text_embeddings)
    names = _yolo_names(cfg.labels)
    if section.get("clip_weights"):
        from defectkit.finetune.yolo_world.text_embeddings import EmbedTextConfig, embed_text

        embed_text(build(EmbedTextConfig, section, "text_embeddings", names=names, output=cfg.text_path))
        return
    import torch

    from defectkit.finetune.yolo_world.text_embeddings import TextEmbeddings, save_text_embeddings

    seed = int(section.get("random_seed", 0))
    gen = torch.Generator().manual_seed(seed)
    vectors = torch.nn.functional.normalize(torch.randn(len(names), 512, generator=gen), dim=1)
    emb = TextEmbeddings(names=names, embeddings=vectors, model=f"random-normal-seed{seed}",
                         extra={"note": "seeded random vectors, not CLIP: a stand-in for offline demos"})
    save_text_embeddings(emb, cfg.text_path)


def _is_world(section: dict[str, Any]) -> bool:
    """Whether the section's detector is YOLO-World (it then trains on the text embeddings), read
    from the checkpoint or model config itself, whatever its file name."""
    from defectkit.predictions import is_yolo_world_checkpoint

    return is_yolo_world_checkpoint(str(section.get("model", "")))


def auto_image_size(cfg: PipelineConfig, section: dict[str, Any]) -> dict[str, Any]:
    """``imgsz: auto`` -> the smallest input side at which the smallest train/val defect instance
    of the split keeps 8 pixels (:func:`defectkit.datasets.sizing.image_size_for`)."""
    if section.get("imgsz") != "auto":
        return section
    from defectkit.datasets.sizing import image_size_for
    from defectkit.datasets.split import load_split

    size = image_size_for(load_split(cfg.split_path))
    log.info("yolo_world: imgsz auto -> %d (the smallest train/val defect keeps 8 px)", size)
    return {**section, "imgsz": size}


def yolo_world_train(cfg: PipelineConfig) -> None:
    from defectkit.finetune.yolo_world.train import YoloFinetuneConfig, finetune_yolo

    section = auto_image_size(cfg, dict(cfg.yolo_world or {}))
    if "overrides" in section:
        section["overrides"] = dict(section["overrides"])
    text = cfg.text_path if _is_world(section) else None
    run = fresh_dir(cfg.run_dir("yolo_world"))
    finetune_yolo(build(YoloFinetuneConfig, section, "yolo_world", data=cfg.labels / "yolo" / "data.yaml",
                        output=run, text_embeddings=text))


def yolo_world_predict(cfg: PipelineConfig) -> None:
    from defectkit.finetune.yolo_world.predict import YoloPredictConfig, predict_yolo

    run = cfg.run_dir("yolo_world")
    section = auto_image_size(cfg, dict(cfg.yolo_world or {}))
    out = predict_yolo(YoloPredictConfig(weights=run / "weights" / "best.pt", split=cfg.split_path,
                                         labels=cfg.labels, output=run / "predictions", imgsz=section.get("imgsz"),
                                         device=section.get("device")))
    if _is_world(section) and not cfg.text_embeddings.get("clip_weights"):
        _add_note(Path(out) / "prediction_meta.json", "text embeddings: seeded random vectors, not CLIP")


def _add_note(meta_path: Path, note: str) -> None:
    """Record a caveat in prediction_meta.json; the report shows it in the model's notes."""
    from defectkit.fileio import read_json

    meta = read_json(meta_path, "prediction meta")
    meta["note"] = note
    atomic_write_json(meta_path, meta)


def sam_train(cfg: PipelineConfig) -> None:
    from defectkit.finetune.sam.train import SamTrainConfig, train_sam

    run = fresh_dir(cfg.run_dir("sam"))
    train_sam(build(SamTrainConfig, dict(cfg.sam or {}), "sam", coco=str(cfg.labels / "coco" / "train.json"),
                    val_coco=str(cfg.labels / "coco" / "val.json"), output=str(run),
                    cache_dir=str(cfg.out / "runs" / ".sam_cache")))


def _sam_predict(cfg: PipelineConfig, boxes: str, folder: str, min_box_score: float) -> None:
    from defectkit.finetune.sam.predict import SamPredictConfig, predict_sam

    section = cfg.sam or {}
    run = cfg.run_dir("sam")
    predict_sam(SamPredictConfig(weights=str(run / "best.pt"), split=str(cfg.split_path), labels=str(cfg.labels),
                                 output=str(run / folder), model_type=section.get("model_type", "tiny"),
                                 boxes=boxes, min_box_score=min_box_score, device=section.get("device"),
                                 cache_dir=str(cfg.out / "runs" / ".sam_cache")))


def sam_predict_gt(cfg: PipelineConfig) -> None:
    _sam_predict(cfg, "gt", "predictions_gt", 0.0)


def sam_predict_detections(cfg: PipelineConfig) -> None:
    dets = cfg.run_dir("yolo_world") / "predictions" / "detections.json"
    _sam_predict(cfg, str(dets), "predictions_yolo_world", 0.01)


def classifier_train(cfg: PipelineConfig) -> None:
    from defectkit.finetune.image.config import ClassifierConfig
    from defectkit.finetune.image.train import train_classifier

    run = fresh_dir(cfg.run_dir("classifier"))
    train_classifier(build(ClassifierConfig, dict(cfg.classifier or {}), "classifier",
                           split=str(cfg.split_path), output=str(run)))


def autoencoder_train(cfg: PipelineConfig) -> None:
    from defectkit.finetune.image.config import AutoencoderConfig
    from defectkit.finetune.image.train import train_autoencoder

    run = fresh_dir(cfg.run_dir("autoencoder"))
    train_autoencoder(build(AutoencoderConfig, dict(cfg.autoencoder or {}), "autoencoder",
                            split=str(cfg.split_path), output=str(run)))


def classifier_predict(cfg: PipelineConfig) -> None:
    from defectkit.finetune.image.config import ImagePredictConfig
    from defectkit.finetune.image.predict import predict_classifier

    run = cfg.run_dir("classifier")
    predict_classifier(ImagePredictConfig(weights=str(run / "best.pt"), output=str(run / "predictions"),
                                          split=str(cfg.split_path), device=(cfg.classifier or {}).get("device")))


def autoencoder_predict(cfg: PipelineConfig) -> None:
    from defectkit.finetune.image.config import ImagePredictConfig
    from defectkit.finetune.image.predict import predict_autoencoder

    run = cfg.run_dir("autoencoder")
    predict_autoencoder(ImagePredictConfig(weights=str(run / "best.pt"), output=str(run / "predictions"),
                                           split=str(cfg.split_path), device=(cfg.autoencoder or {}).get("device")))


def prediction_dirs(cfg: PipelineConfig) -> list[tuple[str, Path]]:
    """(display name, prediction folder) of every enabled model, in report order."""
    out: list[tuple[str, Path]] = []
    if cfg.yolo_world is not None:
        out.append((MODEL_NAMES["yolo_world"], cfg.run_dir("yolo_world") / "predictions"))
    if cfg.sam is not None:
        out.append((MODEL_NAMES["sam_gt"], cfg.run_dir("sam") / "predictions_gt"))
        if cfg.yolo_world is not None and cfg.sam_on_detections:
            out.append((MODEL_NAMES["sam_yolo_world"], cfg.run_dir("sam") / "predictions_yolo_world"))
    if cfg.classifier is not None:
        out.append((MODEL_NAMES["classifier"], cfg.run_dir("classifier") / "predictions"))
    if cfg.autoencoder is not None:
        out.append((MODEL_NAMES["autoencoder"], cfg.run_dir("autoencoder") / "predictions"))
    return out


def evaluate(cfg: PipelineConfig) -> dict:
    from defectkit.eval import EvalConfig
    from defectkit.eval import evaluate as run_eval

    preds = tuple((name, str(path)) for name, path in prediction_dirs(cfg))
    if not preds:
        raise InputError("eval: no model is enabled in the pipeline")
    return run_eval(build(EvalConfig, dict(cfg.eval), "eval", split=str(cfg.split_path), labels=str(cfg.labels),
                          output=str(cfg.report_dir), predictions=preds))
