"""SAM model sizes, a registry of builders and checked checkpoint loading.

``vit_b`` / ``vit_l`` / ``vit_h`` are Meta's own builders from ``segment_anything`` (so a
checkpoint we save loads with ``segment_anything.sam_model_registry[model_type](checkpoint=...)``).
``tiny`` is assembled the same way from segment-anything's own modeling classes, with a small ViT
(256 px input, patch 8, width 64, depth 2) and a narrow prompt encoder / mask decoder, for CPU tests
and the demo; ``sam_model_registry["tiny"](checkpoint=path)`` loads our tiny checkpoints.

Every loading path here goes through :func:`load_sam_state`: ``torch.load(map_location="cpu")``,
then a key/shape comparison that stops with the counts of missing and unexpected keys instead of
``load_state_dict``'s wall of text.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from defectkit.errors import InputError, MissingWeightsError

if TYPE_CHECKING:  # annotations only
    from segment_anything.modeling import Sam

log = logging.getLogger(__name__)

MODEL_TYPES = ("tiny", "vit_b", "vit_l", "vit_h")


@dataclass(frozen=True)
class SamSpec:
    """The numbers that make one SAM size (segment-anything's ``_build_sam`` arguments, plus the
    ones it hard-codes: input size, patch size, window size and the decoder width)."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_hidden_dim: int = 256

    @property
    def embedding_size(self) -> int:
        """Side of the (square) image embedding grid, e.g. 64 for the official models."""
        return self.image_size // self.patch_size


SAM_SPECS: dict[str, SamSpec] = {
    "vit_h": SamSpec(1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": SamSpec(1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": SamSpec(768, 12, 12, (2, 5, 8, 11)),
    # 256 px in, 32x32x64 embedding out; ~0.4 M parameters in all.
    "tiny": SamSpec(
        64,
        2,
        2,
        (1,),
        image_size=256,
        patch_size=8,
        window_size=8,
        prompt_embed_dim=64,
        decoder_mlp_dim=256,
        decoder_num_heads=4,
        iou_head_hidden_dim=64,
    ),
}


def assemble_sam(spec: SamSpec) -> Sam:
    """Build an untrained ``segment_anything.modeling.Sam`` from a spec, exactly as
    ``segment_anything.build_sam._build_sam`` does (same classes, same defaults), in eval mode."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    emb = spec.embedding_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=spec.encoder_depth,
            embed_dim=spec.encoder_embed_dim,
            img_size=spec.image_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=spec.encoder_num_heads,
            patch_size=spec.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=list(spec.encoder_global_attn_indexes),
            window_size=spec.window_size,
            out_chans=spec.prompt_embed_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=spec.prompt_embed_dim,
            image_embedding_size=(emb, emb),
            input_image_size=(spec.image_size, spec.image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2,
                embedding_dim=spec.prompt_embed_dim,
                mlp_dim=spec.decoder_mlp_dim,
                num_heads=spec.decoder_num_heads,
            ),
            transformer_dim=spec.prompt_embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=spec.iou_head_hidden_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def build_sam_tiny(checkpoint: str | os.PathLike | None = None) -> Sam:
    """The ``tiny`` size, with segment-anything's builder signature (``checkpoint`` = a state dict
    file, loaded with ``map_location="cpu"`` and checked)."""
    sam = assemble_sam(SAM_SPECS["tiny"])
    if checkpoint is not None:
        load_sam_state(sam, checkpoint, model_type="tiny")
    return sam


def _official_builder(model_type: str) -> Callable[..., Any]:
    def build(checkpoint: str | os.PathLike | None = None):
        from segment_anything import sam_model_registry as official

        sam = official[model_type](checkpoint=None)  # official builder loads without map_location
        if checkpoint is not None:
            load_sam_state(sam, checkpoint, model_type=model_type)
        return sam

    build.__name__ = f"build_sam_{model_type}"
    build.__doc__ = f"segment-anything's {model_type} builder, with checked CPU loading of ``checkpoint``."
    return build


#: segment-anything-style registry: ``sam_model_registry["tiny"](checkpoint=path) -> Sam``
sam_model_registry: dict[str, Callable[..., Any]] = {
    "tiny": build_sam_tiny,
    "vit_b": _official_builder("vit_b"),
    "vit_l": _official_builder("vit_l"),
    "vit_h": _official_builder("vit_h"),
}


def check_model_type(model_type: str, flag: str = "--model-type") -> str:
    if model_type not in MODEL_TYPES:
        raise InputError(
            f"{flag} {model_type!r}: unknown SAM model type; expected one of {', '.join(MODEL_TYPES)}"
        )
    return model_type


def read_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Read a SAM state dict from ``path`` on the CPU. Accepts a plain state dict or our
    ``train_state.pt`` (uses its ``"model"`` entry). InputError/MissingWeightsError on bad files."""
    from defectkit.runtime import load_checkpoint
    from defectkit.weights.registry import missing_hint, resolve_weights

    p = Path(resolve_weights(path, "SAM checkpoint"))
    if not p.is_file():
        raise MissingWeightsError(f"{p}: SAM checkpoint not found{missing_hint(p)}")
    obj = load_checkpoint(p, "SAM checkpoint")
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise InputError(f"{p}: not a SAM state dict (got {type(obj).__name__})")
    return obj


def state_dict_mismatch(model_state: dict[str, Any], loaded: dict[str, Any]) -> tuple[list, list, list]:
    """(missing keys, unexpected keys, keys whose tensor shapes differ), each sorted."""
    missing = sorted(set(model_state) - set(loaded))
    unexpected = sorted(set(loaded) - set(model_state))
    shapes = sorted(
        k
        for k in set(model_state) & set(loaded)
        if tuple(getattr(loaded[k], "shape", ())) != tuple(model_state[k].shape)
    )
    return missing, unexpected, shapes


def load_sam_state(sam, path: str | os.PathLike, *, model_type: str) -> None:
    """Load a checkpoint into ``sam`` in place, refusing any key or shape mismatch with a message
    that gives the counts (and the first few names) of missing and unexpected keys."""
    state = read_state_dict(path)
    missing, unexpected, shapes = state_dict_mismatch(sam.state_dict(), state)
    if missing or unexpected or shapes:

        def few(keys: list) -> str:
            return ", ".join(keys[:3]) + (" ..." if len(keys) > 3 else "") if keys else "-"

        raise InputError(
            f"{path}: checkpoint does not match --model-type {model_type}: {len(missing)} missing keys "
            f"({few(missing)}), {len(unexpected)} unexpected keys ({few(unexpected)}), "
            f"{len(shapes)} keys with other shapes ({few(shapes)}); "
            f"pick the model type the checkpoint was made for ({', '.join(MODEL_TYPES)})"
        )
    sam.load_state_dict(state, strict=True)


def build_sam_model(model_type: str, checkpoint: str | os.PathLike | None = None) -> Sam:
    """Build SAM of ``model_type`` (tiny|vit_b|vit_l|vit_h), in eval mode on the CPU.

    ``checkpoint`` None -> random init (seed torch first for reproducibility); otherwise the file is
    loaded with ``map_location="cpu"`` and must match the model type exactly (InputError with the
    counts of missing/unexpected keys otherwise; MissingWeightsError naming a missing file).
    Nothing is ever downloaded.
    """
    check_model_type(model_type)
    return sam_model_registry[model_type](checkpoint=checkpoint)


def model_spec(sam: Sam) -> SamSpec | None:
    """The registered spec that ``sam`` was built from (matched by encoder input size and width)."""
    enc = sam.image_encoder
    for spec in SAM_SPECS.values():
        if (
            spec.image_size == enc.img_size
            and spec.encoder_embed_dim == enc.patch_embed.proj.out_channels
            and spec.encoder_depth == len(enc.blocks)
        ):
            return spec
    return None
