"""`defectkit embed-text`: CLIP text embeddings from an explicit weights file, never a download.

No real CLIP weights exist offline, so the happy path uses a *tiny randomly initialised* CLIP
(512-d text projection, 1 layer, width 64) saved as a state dict: it exercises the same loading,
tokenising, encoding and normalising code; the numbers are meaningless.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from defectkit.errors import InputError, MissingWeightsError
from defectkit.finetune.yolo_world.text_embeddings import (
    CLIP_WEIGHTS_NAME,
    import_clip,
    load_text_embeddings,
    resolve_clip_weights,
)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    clip = import_clip()
    torch.manual_seed(0)
    model = clip.model.CLIP(512, 32, 1, 64, 32, 77, 49408, 64, 1, 1)  # embed 512, tiny towers
    path = tmp_path_factory.mktemp("clip") / "tiny-clip.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def no_clip_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # CLIP's cache is ~/.cache/clip
    return tmp_path / "home" / ".cache" / "clip" / CLIP_WEIGHTS_NAME


def test_embed_text_without_weights_names_the_file_and_how_to_get_it(run_cli, no_clip_cache, tmp_path):
    out = tmp_path / "emb.pt"
    code, _, err = run_cli("embed-text", "--names", "broken glass", "-o", out)
    assert code == 2
    assert CLIP_WEIGHTS_NAME in err and str(no_clip_cache.parent) in err
    assert "connected machine" in err and "--clip-weights" in err
    assert not out.exists()


def test_embed_text_missing_explicit_weights_file(run_cli, tmp_path):
    missing = tmp_path / "nowhere" / "ViT-B-32.pt"
    code, _, err = run_cli(
        "embed-text", "--names", "chip", "--clip-weights", missing, "-o", tmp_path / "e.pt"
    )
    assert code == 2 and f"{missing}: CLIP weights file not found" in err


def test_resolve_clip_weights_uses_clip_cache(no_clip_cache, tiny_clip):
    with pytest.raises(MissingWeightsError):
        resolve_clip_weights(None)
    no_clip_cache.parent.mkdir(parents=True)
    no_clip_cache.write_bytes(tiny_clip.read_bytes())
    assert resolve_clip_weights(None) == no_clip_cache
    assert resolve_clip_weights(no_clip_cache.parent) == no_clip_cache  # a folder holding ViT-B-32.pt


def test_embed_text_writes_normalised_512d_features_per_synonym(run_cli, tiny_clip, tmp_path):
    out = tmp_path / "emb.pt"
    code, stdout, err = run_cli(
        "embed-text",
        "--names",
        "broken glass/cracked glass",
        "contamination",
        "--clip-weights",
        tiny_clip,
        "-o",
        out,
    )
    assert code == 0, err
    emb = load_text_embeddings(out)
    assert emb.names == ("broken glass", "cracked glass", "contamination")
    assert emb.embeddings.shape == (3, 512) and emb.embeddings.dtype == torch.float32
    assert torch.allclose(emb.embeddings.norm(dim=1), torch.ones(3), atol=1e-5)
    assert emb.model == "clip:ViT-B/32" and len(emb.weights_sha256) == 64
    assert not torch.allclose(emb.embeddings[0], emb.embeddings[2])
    # same weights, same names -> same numbers; the pkg_resources shim does not stay behind
    out2 = tmp_path / "emb2.pt"
    assert run_cli("embed-text", "--names", "contamination", "--clip-weights", tiny_clip, "-o", out2)[0] == 0
    assert torch.allclose(load_text_embeddings(out2).embeddings[0], emb.embeddings[2], atol=1e-6)
    assert sys.modules.get("pkg_resources") is None or hasattr(sys.modules["pkg_resources"], "require")


def test_embed_text_not_a_clip_file(run_cli, tmp_path):
    bad = tmp_path / "ViT-B-32.pt"
    torch.save({"weight": torch.zeros(2)}, bad)
    code, _, err = run_cli("embed-text", "--names", "chip", "--clip-weights", bad, "-o", tmp_path / "e.pt")
    assert code == 2 and f"{bad}: cannot load as a CLIP model" in err


@pytest.mark.parametrize(
    ("payload", "msg"),
    [
        (None, "not found"),
        ({"names": ["a"]}, "not a defectkit text embeddings file"),
        (b"junk", "cannot load text embeddings"),
    ],
)
def test_load_text_embeddings_errors_name_the_file(tmp_path, payload, msg):
    path = tmp_path / "emb.pt"
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    elif payload is not None:
        torch.save(payload, path)
    with pytest.raises(InputError, match=msg) as info:
        load_text_embeddings(path)
    assert str(path) in str(info.value)
