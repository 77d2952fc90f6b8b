"""The classifier network: any torchvision classification model by name, with its final layer
replaced by ``Dropout(p) + Linear(in_features, num_classes)``, and explicit, offline weights.

``weights``: "none" (from scratch), "imagenet" (torchvision's DEFAULT ImageNet weights, read from
the torch hub cache only: ``$TORCH_HOME/hub/checkpoints/<file>``; never downloaded) or a path to a
state dict (a torchvision-style file, or a defectkit checkpoint with a ``model`` entry).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from defectkit.errors import InputError, MissingWeightsError
from defectkit.runtime import load_checkpoint

log = logging.getLogger(__name__)


def available_archs() -> list[str]:
    """Names of torchvision's classification models (resnet18, resnet50, efficientnet_b0, ...)."""
    from torchvision import models

    return sorted(models.list_models(module=models))


def imagenet_weights_file(arch: str) -> Path:
    """Where torchvision's cached ImageNet weights for ``arch`` must be: hub dir/checkpoints/<file
    name from the DEFAULT weights enum's url>. Honours ``TORCH_HOME``."""
    from torchvision import models

    try:
        enum = models.get_model_weights(arch)
    except (ValueError, KeyError) as exc:
        raise InputError(f"--arch {arch}: torchvision has no weights for this model") from exc
    file_name = enum.DEFAULT.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def head_name(model: nn.Module) -> str:
    """Qualified name of the model's last ``nn.Linear`` (``fc`` for ResNets)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise InputError(f"{type(model).__name__}: no Linear layer to replace with the task head")
    return names[-1]


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def replace_head(model: nn.Module, num_classes: int, dropout: float) -> str:
    """Swap the last Linear for ``Sequential(Dropout(dropout), Linear(in, num_classes))``; returns its name."""
    name = head_name(model)
    old = model.get_submodule(name)
    _set_module(model, name, nn.Sequential(nn.Dropout(dropout), nn.Linear(old.in_features, num_classes)))
    return name


def _state_dict_from(path: Path) -> dict[str, torch.Tensor]:
    obj = load_checkpoint(path)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_backbone_weights(model: nn.Module, head: str, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load ``state`` into ``model`` (head already replaced). A plain torchvision head
    (``fc.weight``) is mapped onto ``fc.1.weight``; head tensors of another shape are skipped (a new
    task); any other missing or mismatched tensor is an InputError naming ``source``."""
    own = model.state_dict()
    mapped = {}
    for k, v in state.items():
        if k.startswith(head + ".") and f"{head}.1.{k[len(head) + 1 :]}" in own:
            k = f"{head}.1.{k[len(head) + 1 :]}"
        mapped[k] = v
    skipped = [
        k for k, v in mapped.items() if k.startswith(head + ".") and k in own and v.shape != own[k].shape
    ]
    for k in skipped:
        del mapped[k]
    bad = [k for k, v in mapped.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in mapped and not k.startswith(head + ".")]
    unexpected = [k for k in mapped if k not in own]
    if bad or missing or unexpected:
        detail = "; ".join(
            f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for what, keys in (("shape mismatch", bad), ("missing", missing), ("unexpected", unexpected))
            if keys
        )
        raise InputError(f"{source}: weights do not fit this architecture ({detail})")
    model.load_state_dict(mapped, strict=False)
    log.info("loaded weights from %s%s", source, f" (new head: {head})" if skipped else "")


def build_classifier(
    arch: str, num_classes: int, *, weights: str = "none", dropout: float = 0.0
) -> nn.Module:
    """A torchvision ``arch`` with a ``Dropout + Linear`` head for ``num_classes`` classes.

    Raises MissingWeightsError naming the exact cache file when ``weights="imagenet"`` and the file
    is absent, InputError for an unknown architecture or a weights file that does not fit.
    """
    from torchvision import models

    if arch not in available_archs():
        raise InputError(
            f"--arch {arch}: not a torchvision classification model "
            f"(e.g. resnet18, resnet34, resnet50, efficientnet_b0)"
        )
    from defectkit.weights.registry import lookup, missing_hint, resolve_weights, weights_dir

    source: Path | None = None
    if weights == "imagenet":
        source = imagenet_weights_file(arch)
        fetched = weights_dir() / source.name
        if fetched.is_file():
            source = fetched
        elif not source.is_file():
            fetch = f"`defectkit weights fetch {arch}`, " if lookup(arch) else ""
            raise MissingWeightsError(
                f"--weights imagenet: {source.name} not found in {source.parent} or {fetched.parent}; "
                f"{fetch}or put torchvision's ImageNet file for {arch} in one of them (or set TORCH_HOME), "
                "use --weights PATH, or --weights none to train from scratch (nothing is downloaded implicitly)"
            )
    elif weights != "none":
        source = Path(resolve_weights(weights, "--weights"))
        if not source.is_file():
            raise MissingWeightsError(f"--weights {weights}: file not found{missing_hint(source)}")
    model = models.get_model(arch, weights=None)
    head = replace_head(model, num_classes, dropout)
    if source is not None:
        load_backbone_weights(model, head, _state_dict_from(source), source)
    return model


def set_backbone_trainable(model: nn.Module, head: str, trainable: bool) -> None:
    """(Un)freeze every parameter outside the head; the head always trains."""
    for name, p in model.named_parameters():
        p.requires_grad_(trainable or name.startswith(head + "."))
