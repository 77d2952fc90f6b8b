"""``defectkit run PIPELINE.yaml``: build the stage list from a config and run it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from defectkit.datasets.split import dataset_fingerprint
from defectkit.errors import InputError
from defectkit.fileio import atomic_write_json, ensure_dir, read_json, read_yaml
from defectkit.pipeline import steps
from defectkit.pipeline.chain import MODEL_SECTIONS, PipelineConfig, build
from defectkit.pipeline.stages import Stage, StageResult, run_stages

log = logging.getLogger(__name__)


def _weights_path(value: str) -> Path:
    """A weights value as the file it stands for: a name resolves into the weights folder."""
    from defectkit.weights.registry import named_path

    return named_path(value) or Path(value)


def _weights(cfg: PipelineConfig) -> dict[str, tuple[Path, ...]]:
    """Weight files each training stage needs, resolved to paths (checked before anything runs)."""
    from defectkit.weights.registry import lookup, weights_dir

    need: dict[str, tuple[Path, ...]] = {}
    yw = cfg.yolo_world or {}
    if str(yw.get("model", "")).endswith(".pt") or lookup(yw.get("model")):
        need["yolo_world_train"] = (_weights_path(yw["model"]),)
    clip = cfg.text_embeddings.get("clip_weights")
    if clip:
        need["text_embeddings"] = (_weights_path(clip),)
    if cfg.sam and cfg.sam.get("checkpoint"):
        need["sam_train"] = (_weights_path(cfg.sam["checkpoint"]),)
    if cfg.classifier:
        w = str(cfg.classifier.get("weights", "none"))
        if w == "imagenet":
            from defectkit.finetune.image.model import imagenet_weights_file

            hub = imagenet_weights_file(cfg.classifier.get("arch", "resnet18"))
            need["classifier_train"] = (hub if hub.is_file() else weights_dir() / hub.name,)
        elif w != "none":
            need["classifier_train"] = (_weights_path(w),)
    return need


def build_stages(cfg: PipelineConfig) -> list[Stage]:
    """Every enabled stage, in order, with the settings its fingerprint covers."""
    sections: dict[str, Any] = {"synth": cfg.synth, "dataset": str(cfg.data_dir), "split": cfg.split,
                                "convert": cfg.convert, "text": cfg.text_embeddings, "eval": cfg.eval,
                                **{m: getattr(cfg, m) for m in MODEL_SECTIONS}}
    weights = _weights(cfg)
    spec: list[tuple[str, Any, dict, tuple[str, ...], tuple[Path, ...]]] = []
    if cfg.synth is not None:
        spec.append(("synth", steps.synth, {"synth": cfg.synth}, (), (cfg.data_dir,)))
    first = ("synth",) if cfg.synth is not None else ()
    spec += [
        ("describe", steps.describe, {"dataset": sections["dataset"]}, first, (cfg.out / "describe.json",)),
        ("split", steps.split, {"dataset": sections["dataset"], "split": cfg.split}, first, (cfg.made_split_path,)),
    ]
    if cfg.paste is not None:
        spec.append(("paste", steps.paste, {"paste": cfg.paste}, ("split",), (cfg.split_path,)))
    split_stage = "paste" if cfg.paste is not None else "split"
    spec.append(("convert", steps.convert, {"convert": cfg.convert}, (split_stage,),
                 (cfg.labels / "coco" / "test.json",)))
    if cfg.yolo_world is not None:
        spec += [
            ("text_embeddings", steps.text_embeddings, {"text": cfg.text_embeddings}, ("convert",), (cfg.text_path,)),
            ("yolo_world_train", steps.yolo_world_train, {"m": cfg.yolo_world}, ("text_embeddings",),
             (cfg.run_dir("yolo_world") / "weights" / "best.pt",)),
            ("yolo_world_predict", steps.yolo_world_predict, {}, ("yolo_world_train",),
             (cfg.run_dir("yolo_world") / "predictions" / "detections.json",)),
        ]
    if cfg.sam is not None:
        spec += [
            ("sam_train", steps.sam_train, {"m": cfg.sam}, ("convert",), (cfg.run_dir("sam") / "best.pt",)),
            ("sam_predict_gt", steps.sam_predict_gt, {}, ("sam_train",),
             (cfg.run_dir("sam") / "predictions_gt" / "detections.json",)),
        ]
        if cfg.yolo_world is not None and cfg.sam_on_detections:
            spec.append(("sam_predict_detections", steps.sam_predict_detections, {},
                         ("sam_train", "yolo_world_predict"),
                         (cfg.run_dir("sam") / "predictions_yolo_world" / "detections.json",)))
    for model in ("classifier", "autoencoder"):
        if getattr(cfg, model) is not None:
            spec += [
                (f"{model}_train", getattr(steps, f"{model}_train"), {"m": getattr(cfg, model)}, (split_stage,),
                 (cfg.run_dir(model) / "best.pt",)),
                (f"{model}_predict", getattr(steps, f"{model}_predict"), {}, (f"{model}_train",),
                 (cfg.run_dir(model) / "predictions" / "image_scores.csv",)),
            ]
    predict_stages = tuple(s[0] for s in spec if "predict" in s[0])
    spec.append(("eval", steps.evaluate, {"eval": cfg.eval, "models": [n for n, _ in steps.prediction_dirs(cfg)]},
                 ("convert", *predict_stages), (cfg.report_dir / "report.json",)))
    data_digest = functools.cache(lambda: dataset_fingerprint(cfg.data_dir))  # hashed once per run
    reads_dataset = {"describe", "split"}
    return [Stage(name, (lambda fn=fn: fn(cfg)), conf, after, outputs, weights.get(name, ()),
                  inputs=data_digest if name in reads_dataset else None, devices=_devices(cfg, name))
            for name, fn, conf, after, outputs in spec]


def _devices(cfg: PipelineConfig, stage: str) -> tuple[tuple[str, str], ...]:
    """The ``(YAML key, device)`` a stage runs on, when its section names one."""
    for section in (*MODEL_SECTIONS, "text_embeddings"):
        device = (getattr(cfg, section) or {}).get("device") if stage.startswith(section) else None
        if device not in (None, "", "auto"):
            return ((f"{section}.device", str(device)),)
    return ()


def run_pipeline(cfg: PipelineConfig, *, from_stage: str | None = None, only: str | None = None,
                 on_stage: Callable[[str], Any] | None = None) -> list[StageResult]:
    """Run the chain into ``cfg.output`` (stages whose inputs and settings are unchanged are skipped);
    ``on_stage(name)`` is called before each stage runs."""
    from defectkit.pipeline.multi import check_one_category

    check_one_category(cfg)
    ensure_dir(cfg.out)
    stages = build_stages(cfg)
    results = run_stages(stages, cfg.out / ".stages", from_stage=from_stage, only=only, on_stage=on_stage)
    atomic_write_json(cfg.out / "pipeline.json", {
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "stages": [{"name": r.name, "status": r.status, "seconds": round(r.seconds, 1)} for r in results],
    })
    return results


#: Sections that default to settings when left empty (the others are skipped when empty).
_DEFAULTED_SECTIONS = ("split", "convert", "text_embeddings", "eval")


def _check_section_types(raw: dict[str, Any], p: Path) -> None:
    """InputError naming the file and section when a section is not a mapping (``classifier: 5``);
    an empty defaulted section (``split:``) takes the defaults."""
    for section in ("synth", "paste", *_DEFAULTED_SECTIONS, *MODEL_SECTIONS):
        value = raw.get(section)
        if value is None and section in _DEFAULTED_SECTIONS:
            raw.pop(section, None)
        elif value is not None and not isinstance(value, dict):
            raise InputError(
                f"{p}: section {section!r} must be a mapping of key: value (or empty), got {value!r}"
            )
    if not isinstance(raw.get("sam_on_detections", True), bool):
        raise InputError(f"{p}: sam_on_detections must be true or false, got {raw['sam_on_detections']!r}")


def load_pipeline_yaml(path: str | Path, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Read a pipeline YAML file; relative paths in it are taken relative to the file's folder.
    ``overrides``: ``--set KEY=VALUE`` items applied on top (:mod:`defectkit.pipeline.overrides`)."""

    from defectkit.pipeline.overrides import apply_overrides
    from defectkit.weights.registry import lookup

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: pipeline file not found")
    raw = read_yaml(p, "pipeline file")
    if raw is None:
        raise InputError(f"{p}: pipeline file is empty (it needs at least `output:` and `dataset:`)")
    if not isinstance(raw, dict):
        raise InputError(f"{p}: expected a mapping of sections at the top level")
    _check_section_types(raw, p)
    base = p.resolve().parent
    for key in ("output", "dataset"):
        if raw.get(key):
            raw[key] = str((base / str(raw[key])).resolve()) if not Path(str(raw[key])).is_absolute() else raw[key]
    for section, key in (("yolo_world", "model"), ("sam", "checkpoint"), ("classifier", "weights"),
                         ("text_embeddings", "clip_weights")):
        value = (raw.get(section) or {}).get(key)
        if isinstance(value, str) and ("/" in value or value.endswith((".pt", ".pth"))) and not Path(value).is_absolute():
            candidate = base / value
            if lookup(value) and not candidate.exists():
                continue  # a weights name: resolved from the weights folder when the stage runs
            raw[section][key] = str(candidate.resolve()) if value.endswith((".pt", ".pth")) or candidate.exists() else value
    raw = apply_overrides(raw, overrides)
    where = f"{p} with --set" if overrides else str(p)
    cfg = build(PipelineConfig, raw, where)
    check_sections(cfg, where)
    return cfg


def check_sections(cfg: PipelineConfig, where: str) -> None:
    """Build every enabled section's config class with placeholder paths, so a misspelt key or a bad
    value is reported (naming the file and section) before any stage runs."""
    from defectkit.converters import ConvertConfig
    from defectkit.datasets.split import SplitConfig
    from defectkit.eval import EvalConfig
    from defectkit.finetune.image.config import AutoencoderConfig, ClassifierConfig
    from defectkit.finetune.sam.config import SamTrainConfig
    from defectkit.finetune.yolo_world.config import YoloFinetuneConfig
    from defectkit.predictions import is_yolo_world_checkpoint

    build(SplitConfig, cfg.split, f"{where}: split")
    if cfg.paste is not None:
        from defectkit.datasets.paste import PasteConfig

        build(PasteConfig, cfg.paste, f"{where}: paste", split="-", output="-")
    convert = dict(cfg.convert)
    if isinstance(convert.get("names"), dict):
        convert["names"] = tuple(sorted(convert["names"].items()))
    build(ConvertConfig, convert, f"{where}: convert", dataset="-", split="-", output="-")
    build(EvalConfig, cfg.eval, f"{where}: eval", split="-", labels="-", output="-", predictions=(("m", "-"),))
    placeholders = {
        "classifier": (ClassifierConfig, {"split": "-", "output": "-"}),
        "autoencoder": (AutoencoderConfig, {"split": "-", "output": "-"}),
        "sam": (SamTrainConfig, {"coco": "-", "val_coco": "-", "output": "-", "cache_dir": "-"}),
    }
    for name, (cls, fixed) in placeholders.items():
        if getattr(cfg, name) is not None:
            build(cls, getattr(cfg, name), f"{where}: {name}", **fixed)
    if cfg.yolo_world is not None:
        section = dict(cfg.yolo_world)
        if section.get("imgsz") == "auto":  # chosen from the split when the stage runs
            section["imgsz"] = 640
        world = is_yolo_world_checkpoint(str(section.get("model", "")))
        build(YoloFinetuneConfig, section, f"{where}: yolo_world", data=Path("-"), output=Path("-"),
              text_embeddings=Path("-") if world else None)


def read_report_table(cfg: PipelineConfig) -> str:
    """The homework-style comparison table of the report this pipeline wrote."""
    from defectkit.eval import format_table

    return format_table(read_json(cfg.report_dir / "report.json", "report"))
