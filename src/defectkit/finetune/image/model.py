"""The image-level networks, how they are built and loaded, and how their output becomes a score.

Classifier: any torchvision classification model by name, with its final layer replaced by
``Dropout(p) + Linear(in_features, num_classes)``, and explicit, offline weights. ``weights``:
"none" (from scratch), "imagenet" (torchvision's DEFAULT ImageNet weights, read from the torch hub
cache only: ``$TORCH_HOME/hub/checkpoints/<file>``; never downloaded) or a path to a state dict (a
torchvision-style file, or a defectkit checkpoint with a ``model`` entry). Image score
(:func:`defect_score`) = 1 - p(good) (= p(defect) for the binary task).

AutoEncoder: ``SSIMAutoEncoder`` is the convolutional AutoEncoder of the MVTec AD paper (Bergmann
et al., "MVTec AD", CVPR 2019, and "Improving unsupervised defect segmentation by applying
structural similarity to autoencoders", VISAPP 2019): a dense bottleneck of ``latent`` (100)
values, so the decoder can only draw what good images have in common and a defect is not
reconstructed. ``ConvAutoEncoder`` is defectkit's earlier fully convolutional one (a latent *map*
of H/16 x W/16), kept so that checkpoints written with it still load. Anomaly map
(:func:`anomaly_maps`) = per-pixel reconstruction error (L2 and/or 1-SSIM, the training loss's
error), Gaussian-smoothed; image score = a reduction of it (:func:`reduce_maps`; the mean of its
top 1 % by default).

:func:`load_classifier` / :func:`load_autoencoder` rebuild a trained model from a defectkit
checkpoint (``RUN/best.pt``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from defectkit.errors import InputError, MissingWeightsError
from defectkit.runtime import load_checkpoint

log = logging.getLogger(__name__)

#: the ``kind`` of each model in its checkpoints and prediction folders
CLASSIFIER_KIND = "classifier"
AUTOENCODER_KIND = "anomaly"


# ---- the classifier ---------------------------------------------------------------------------


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


# ---- the AutoEncoder ---------------------------------------------------------------------------


#: the encoder of Bergmann et al. at 128 px: (out channels, kernel, stride); it ends at 8x8
BERGMANN_LAYERS = (
    (32, 4, 2),
    (32, 4, 2),
    (32, 3, 1),
    (64, 4, 2),
    (64, 3, 1),
    (128, 4, 2),
    (64, 3, 1),
    (32, 3, 1),
)


def _act(layer: nn.Module) -> list[nn.Module]:
    return [layer, nn.LeakyReLU(0.2, True)]


def bergmann_layers(image_size: int) -> tuple[tuple[int, int, int], ...]:
    """The encoder layers for ``image_size`` (a power of two >= 32): Bergmann's 128-px stack,
    with 32-channel stride-2 layers added in front (larger images) or the first ones removed
    (smaller), so that the last feature map is always 8x8."""
    n = int(math.log2(image_size // 8))
    if image_size < 32 or 8 * 2**n != image_size:
        raise ValueError(f"image_size must be a power of two >= 32, got {image_size}")
    layers = list(BERGMANN_LAYERS)
    if n > 4:
        layers = [(32, 4, 2)] * (n - 4) + layers
    while sum(1 for _, _, s in layers if s == 2) > n:
        layers.pop(0)
    return tuple(layers)


class SSIMAutoEncoder(nn.Module):
    """NxCxSxS in [0, 1] -> NxCxSxS in [0, 1], S = ``image_size`` (a power of two >= 32).

    Encoder: the layers of ``bergmann_layers`` (LeakyReLU 0.2) down to 8x8, then an 8x8
    convolution to a ``latent``-vector (1x1). Decoder: the mirror image (transposed
    convolutions where the encoder strides), sigmoid output.
    """

    def __init__(self, image_size: int = 128, latent: int = 100, channels: int = 3) -> None:
        super().__init__()
        layers = bergmann_layers(image_size)
        enc: list[nn.Module] = []
        cin = channels
        for cout, k, s in layers:
            enc += _act(nn.Conv2d(cin, cout, k, s, 1))
            cin = cout
        enc.append(nn.Conv2d(cin, latent, 8, 1, 0))
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = _act(nn.ConvTranspose2d(latent, cin, 8, 1, 0))
        for i in range(len(layers) - 1, 0, -1):
            cout, (_, k, s) = layers[i - 1][0], layers[i]
            conv = nn.ConvTranspose2d if s == 2 else nn.Conv2d
            dec += _act(conv(cin, cout, k, s, 1))
            cin = cout
        _, k, s = layers[0]
        dec += [(nn.ConvTranspose2d if s == 2 else nn.Conv2d)(cin, channels, k, s, 1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)
    )


class ConvAutoEncoder(nn.Module):
    """Nx3xHxW in [0, 1] -> Nx3xHxW in [0, 1]; H and W multiples of 16.

    Four stride-2 stages (width, 2w, 4w, 4w channels) down to H/16 x W/16 x ``latent``, mirrored
    by transposed convolutions, sigmoid output.
    """

    def __init__(self, width: int = 32, latent: int = 64) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            _down(3, w),
            _down(w, 2 * w),
            _down(2 * w, 4 * w),
            _down(4 * w, 4 * w),
            nn.Conv2d(4 * w, latent, 3, 1, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent, 4 * w, 3, 1, 1),
            nn.LeakyReLU(0.2, True),
            _up(4 * w, 4 * w),
            _up(4 * w, 2 * w),
            _up(2 * w, w),
            _up(w, w),
            nn.Conv2d(w, 3, 3, 1, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def build_autoencoder(spec: dict) -> nn.Module:
    """The network a checkpoint's ``model_spec`` describes (``arch`` "ssim-ae" or "conv-autoencoder")."""
    if spec["arch"] == "ssim-ae":
        return SSIMAutoEncoder(spec["image_size"], spec["latent"])
    if spec["arch"] == "conv-autoencoder":
        return ConvAutoEncoder(spec["width"], spec["latent"])
    raise ValueError(f"unknown AutoEncoder arch {spec['arch']!r}")


# ---- loading a trained model and scoring images ---------------------------------------------


def load_classifier(weights: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained classifier from a defectkit checkpoint; returns (model in eval mode, checkpoint)."""
    from defectkit.finetune.image.runs import load_image_checkpoint

    ckpt = load_image_checkpoint(weights, CLASSIFIER_KIND)
    spec = ckpt["model_spec"]
    model = build_classifier(spec["arch"], spec["num_classes"], weights="none", dropout=spec["dropout"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def load_autoencoder(weights: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained AutoEncoder from a defectkit checkpoint: (model in eval mode, checkpoint)."""
    from defectkit.finetune.image.runs import load_image_checkpoint

    ckpt = load_image_checkpoint(weights, AUTOENCODER_KIND)
    model = build_autoencoder(ckpt["model_spec"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def defect_score(logits: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
    """NxC logits (class 0 = good) -> N scores 1 - p(good) in [0, 1]."""
    return 1.0 - torch.softmax(logits.float(), dim=1)[:, 0]


def anomaly_maps(
    recon: torch.Tensor,
    image: torch.Tensor,
    *,
    loss: str,
    sigma: float,
    stats: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Smoothed reconstruction-error maps, Nx3xHxW pair -> NxHxW float (higher = more anomalous).

    ``stats`` (``{"mean": HxW, "std": HxW}`` from ``train.good_map_stats``): each pixel is
    standardised by the error that good images have there, so a place that is always hard to
    reconstruct (the bottle's bright rim) counts as much as any other.
    """
    from defectkit.finetune.image.losses import gaussian_smooth, reconstruction_error_map

    maps = gaussian_smooth(reconstruction_error_map(recon, image, loss), sigma)
    if stats is not None:
        mean, std = stats["mean"].to(maps), stats["std"].to(maps)
        maps = (maps - mean) / (std + 0.1 * std.mean() + 1e-12)  # floor: no division by ~0
    return maps


def reduce_maps(maps: torch.Tensor, reduction: str) -> torch.Tensor:
    """NxHxW -> N image scores: "max", "mean", "top1" / "top01" (mean of the highest 1% / 0.1%
    of pixels: a defect of a few dozen pixels still counts, one outlier pixel does not)."""
    flat = maps.flatten(1)
    if reduction == "max":
        return flat.max(dim=1).values
    if reduction == "mean":
        return flat.mean(dim=1)
    k = max(1, flat.shape[1] // (1000 if reduction == "top01" else 100))
    return flat.topk(k, dim=1).values.mean(dim=1)


def make_score_fn(loss: str, sigma: float, reduction: str, stats: dict[str, torch.Tensor] | None = None):
    """``score(recon, image) -> N`` image scores of the AutoEncoder (:func:`anomaly_maps` reduced
    by :func:`reduce_maps`)."""

    def score(recon: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return reduce_maps(anomaly_maps(recon, image, loss=loss, sigma=sigma, stats=stats), reduction)

    return score
