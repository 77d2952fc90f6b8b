"""Class-name text embeddings for YOLO-World, stored as an explicit file instead of a hidden download.

``defectkit embed-text`` computes OpenAI CLIP ViT-B/32 text features (512-d, L2-normalised, the ones
YOLO-World expects) with the ``clip`` module of the PyPI package ``clip-anytorch``, from a weights
file the user points to (or CLIP's own cache folder). Training, validation and prediction then read
that file; nothing in defectkit ever builds CLIP behind the user's back.

File format (``torch.save`` of a plain dict, loadable with ``weights_only=True``)::

    {"format": "defectkit.text_embeddings/1", "names": [str, ...],
     "embeddings": FloatTensor[N, D] (float32, rows L2-normalised, row i belongs to names[i]),
     "model": "clip:ViT-B/32", "weights_sha256": str | None, "normalized": True}
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import types
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectkit.errors import InputError, MissingWeightsError
from defectkit.fileio import atomic_open, sha256_file
from defectkit.weights.registry import REGISTRY

log = logging.getLogger(__name__)

FORMAT = "defectkit.text_embeddings/1"
CLIP_MODEL = "clip:ViT-B/32"
CLIP_WEIGHTS_NAME = "ViT-B-32.pt"
#: SHA-256 of OpenAI's ViT-B-32.pt (it is part of the download URL clip uses; one source: the weights registry)
CLIP_WEIGHTS_SHA256 = REGISTRY["clip_vit_b_32"].sha256
CLIP_WEIGHTS_URL = REGISTRY["clip_vit_b_32"].url
#: YOLO-World's text feature width (CLIP ViT-B/32 text projection)
EMBED_DIM = 512


@dataclass(frozen=True)
class TextEmbeddings:
    """Names and their text features. ``embeddings``: torch float32 tensor [len(names), D]."""

    names: tuple[str, ...]
    embeddings: Any
    model: str = CLIP_MODEL
    weights_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("no names")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate names in {list(self.names)}")
        shape = tuple(self.embeddings.shape)
        if len(shape) != 2 or shape[0] != len(self.names):
            raise ValueError(f"embeddings must be [{len(self.names)}, D], got {list(shape)}")

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def features_for(self, names: Sequence[str], *, source: str = "text embeddings file"):
        """FloatTensor[len(names), D] in the order of ``names``; InputError listing missing names."""
        import torch

        index = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise InputError(
                f"{source}: no embedding for {missing} (it has {list(self.names)}); re-run "
                f"`defectkit embed-text --names ...` with every class name of the dataset"
            )
        return torch.stack([self.embeddings[index[n]] for n in names]).float()


def save_text_embeddings(emb: TextEmbeddings, path: str | os.PathLike) -> Path:
    """Write ``emb`` atomically (see the module docstring for the format)."""
    import torch

    payload = {
        "format": FORMAT,
        "names": list(emb.names),
        "embeddings": emb.embeddings.detach().float().cpu().contiguous(),
        "model": emb.model,
        "weights_sha256": emb.weights_sha256,
        "normalized": True,
        **({"extra": emb.extra} if emb.extra else {}),
    }
    with atomic_open(path, "wb") as fh:
        torch.save(payload, fh)
    return Path(path)


def load_text_embeddings(path: str | os.PathLike) -> TextEmbeddings:
    """Read a file written by :func:`save_text_embeddings`; InputError naming the file otherwise."""
    from defectkit.runtime import load_checkpoint

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: text embeddings file not found (make one with `defectkit embed-text`)")
    data = load_checkpoint(p, "text embeddings")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{p}: not a defectkit text embeddings file (expected format {FORMAT!r})")
    try:
        return TextEmbeddings(
            names=tuple(data["names"]),
            embeddings=data["embeddings"].float(),
            model=str(data.get("model", "")),
            weights_sha256=data.get("weights_sha256"),
            extra=dict(data.get("extra", {})),
        )
    except (KeyError, ValueError, AttributeError) as exc:
        raise InputError(f"{p}: malformed text embeddings file ({exc})") from exc


def clip_cache_path() -> Path:
    """Where ``clip.load("ViT-B/32")`` keeps its weights: ``~/.cache/clip/ViT-B-32.pt``."""
    return Path(os.path.expanduser("~/.cache/clip")) / CLIP_WEIGHTS_NAME


def resolve_clip_weights(path: str | os.PathLike | None) -> Path:
    """The CLIP weights file to use: ``path`` if given (a path, or the name ``clip_vit_b_32``), else
    ``$DEFECTKIT_HOME/weights/ViT-B-32.pt``, else CLIP's cache; never downloads.

    Raises MissingWeightsError naming ViT-B-32.pt and how to fetch it.
    """
    from defectkit.weights.registry import resolve_weights, weights_dir

    how = (
        "`defectkit weights fetch clip_vit_b_32` downloads it (sha256 checked); offline, download "
        f"{CLIP_WEIGHTS_NAME} on a connected machine (`curl -LO {CLIP_WEIGHTS_URL}`), copy it here and pass "
        f"--clip-weights PATH/{CLIP_WEIGHTS_NAME}"
    )
    if path is not None:
        p = Path(resolve_weights(path, "--clip-weights"))
        if p.is_dir():
            p = p / CLIP_WEIGHTS_NAME
        if not p.is_file():
            raise MissingWeightsError(f"{p}: CLIP weights file not found; {how}")
        return p
    fetched, cached = weights_dir() / CLIP_WEIGHTS_NAME, clip_cache_path()
    if fetched.is_file():
        return fetched
    if not cached.is_file():
        raise MissingWeightsError(
            f"CLIP text encoder weights {CLIP_WEIGHTS_NAME} not found (looked in {fetched.parent} and "
            f"{cached.parent}); {how}"
        )
    return cached


@contextlib.contextmanager
def _pkg_resources_shim() -> Iterator[None]:
    """clip-anytorch 2.6 does ``from pkg_resources import packaging``; setuptools >= 81 has no
    pkg_resources. Provide that one attribute while ``clip`` is imported, then remove the shim."""
    if importlib.util.find_spec("pkg_resources") is not None:
        yield
        return
    import packaging.version  # noqa: F401  (clip reads packaging.version)

    shim = types.ModuleType("pkg_resources")
    shim.packaging = sys.modules["packaging"]  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = shim
    try:
        yield
    finally:
        if sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]


def import_clip() -> types.ModuleType:
    """``import clip`` (from clip-anytorch), with a clear InputError when it is not installed."""
    try:
        with _pkg_resources_shim():
            return importlib.import_module("clip")
    except ImportError as exc:
        raise InputError(
            f"cannot import `clip` ({exc}); install the PyPI package clip-anytorch (`pip install clip-anytorch`)"
        ) from exc


def compute_clip_text_embeddings(
    names: Sequence[str], weights: str | os.PathLike, *, device: str = "cpu", batch: int = 80
) -> TextEmbeddings:
    """Encode ``names`` with CLIP's text tower as YOLO-World does: ``encode_text`` then L2-normalise.

    ``weights``: an existing CLIP checkpoint file (JIT archive or state dict). Returns float32 [N, D].
    """
    import torch

    clip = import_clip()
    weights = Path(weights)
    digest = sha256_file(weights)
    if digest != CLIP_WEIGHTS_SHA256:
        log.warning("%s is not OpenAI's ViT-B/32 file (sha256 %s...); using it anyway", weights, digest[:12])
    try:
        with warnings.catch_warnings():  # clip.load probes for a TorchScript archive first
            warnings.simplefilter("ignore", FutureWarning)
            model, _ = clip.load(str(weights), device=device, jit=False)
    except Exception as exc:  # clip raises RuntimeError/KeyError for files that are not CLIP checkpoints
        raise InputError(f"{weights}: cannot load as a CLIP model ({type(exc).__name__}: {exc})") from exc
    model.eval()
    feats = []
    with torch.no_grad():
        tokens = clip.tokenize(list(names), truncate=True).to(device)
        for chunk in tokens.split(batch):
            f = model.encode_text(chunk).float()
            feats.append(f / f.norm(p=2, dim=-1, keepdim=True))
    emb = torch.cat(feats).cpu()
    if emb.shape[1] != EMBED_DIM:
        log.warning(
            "%s gives %d-d text features; YOLO-World models expect %d", weights, emb.shape[1], EMBED_DIM
        )
    return TextEmbeddings(names=tuple(names), embeddings=emb, model=CLIP_MODEL, weights_sha256=digest)


@dataclass(frozen=True)
class EmbedTextConfig:
    """``defectkit embed-text``: class names -> text embeddings file."""

    names: tuple[str, ...]
    output: Path
    clip_weights: Path | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("--names: give at least one class name")
        clean = [n.strip() for n in self.names]
        if any(not n for n in clean):
            raise ValueError("--names: empty class name")
        if len(set(clean)) != len(clean):
            raise ValueError(f"--names: duplicate names in {clean}")
        object.__setattr__(self, "names", tuple(clean))


def split_synonyms(names: Sequence[str]) -> tuple[str, ...]:
    """Every text YOLO-World needs for ``names``: each ``/``-separated synonym, stripped, first-seen order."""
    out: dict[str, None] = {}
    for name in names:
        for part in str(name).split("/"):
            if part.strip():
                out[part.strip()] = None
    return tuple(out)


def embed_text(config: EmbedTextConfig) -> Path:
    """Compute and save the text embeddings of ``config.names`` (synonyms split on ``/``)."""
    weights = resolve_clip_weights(config.clip_weights)
    emb = compute_clip_text_embeddings(split_synonyms(config.names), weights, device=config.device)
    out = save_text_embeddings(emb, config.output)
    log.info("wrote %d text embeddings (%d-d) to %s", len(emb.names), emb.dim, out)
    return out
