"""On-disk cache of SAM image embeddings (fp16, memory-mapped), so a frozen image encoder runs
once per image across epochs and runs.

Key = sha256 of (image file content hash, encoder weights hash, model type, input size[, flip
variant for augmented copies: see ``data.dihedral``]). The
encoder hash is taken over the image encoder's own tensors, so it stands in for "checkpoint hash"
and for "random-init:<seed>" alike, and a decoder-only fine-tune (same encoder) reuses the cache.
Each entry is one ``<key[:2]>/<key>.npy`` file of shape CxHxW float16 (256x64x64 = 2 MiB for
the official models), written atomically and read with ``np.load(mmap_mode="r")``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from defectkit.fileio import atomic_open, ensure_dir, sha256_file

if TYPE_CHECKING:  # annotations only
    from segment_anything.modeling import Sam

log = logging.getLogger(__name__)


def encoder_fingerprint(sam: Sam) -> str:
    """sha256 over the image encoder's state dict (names, dtypes, shapes and bytes), sorted by name."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(sam.image_encoder.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class EmbeddingCache:
    """Embeddings under ``root``, one ``.npy`` per key. Counts ``hits`` and ``misses`` (encoder calls).

    ``encode_fn(sample) -> CxHxW float tensor`` is supplied by the caller; :meth:`get_or_encode`
    returns a CxHxW float32 CPU tensor built from the memory-mapped fp16 file, laid out channels-last
    (strides ``(1, W*C, C)``): the mask decoder reads the embedding as HW tokens of C channels, and
    transposing the fp16 file once here is cheaper than transposing fp32 in every decoder call.
    """

    def __init__(
        self, root: str | os.PathLike, *, model_type: str, encoder_hash: str, image_size: int
    ) -> None:
        self.root = Path(root)
        self.model_type = model_type
        self.encoder_hash = encoder_hash
        self.image_size = image_size
        self.hits = 0
        self.misses = 0
        self._image_hashes: dict[Path, str] = {}

    def key(self, image_path: str | os.PathLike, variant: int = 0) -> str:
        """Cache key of an image file; ``variant`` != 0 names a transformed copy (e.g. a flip)."""
        p = Path(image_path)
        if p not in self._image_hashes:
            self._image_hashes[p] = sha256_file(p)
        text = f"{self._image_hashes[p]}|{self.encoder_hash}|{self.model_type}|{self.image_size}"
        if variant:
            text += f"|aug{variant}"
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def load(self, key: str) -> np.ndarray | None:
        """The memory-mapped fp16 array, or None when absent or unreadable (then it is recomputed)."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            return np.load(p, mmap_mode="r")
        except (ValueError, OSError) as exc:
            log.warning("%s: unreadable cache entry (%s); recomputing", p, exc)
            return None

    def store(self, key: str, embedding: np.ndarray) -> Path:
        p = self.path(key)
        ensure_dir(p.parent)
        with atomic_open(p, "wb") as fh:
            np.save(fh, np.ascontiguousarray(embedding, dtype=np.float16))
        return p

    def get_or_encode(self, image_path: str | os.PathLike, encode_fn, variant: int = 0):
        """Cached embedding for the image (``variant``: which transformed copy), running
        ``encode_fn()`` (-> CxHxW tensor) only on a miss."""
        import torch

        key = self.key(image_path, variant)
        arr = self.load(key)
        if arr is None:
            self.misses += 1
            emb = encode_fn().detach().float().cpu().numpy()
            self.store(key, emb)
            arr = self.load(key)
        else:
            self.hits += 1
        c, h, w = arr.shape
        tokens = np.ascontiguousarray(np.asarray(arr).reshape(c, h * w).T)  # HW x C fp16, a copy
        return torch.from_numpy(tokens).float().view(h, w, c).permute(2, 0, 1)
