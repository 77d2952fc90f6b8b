"""SAM sizes, registry building and checked checkpoint loading."""

from __future__ import annotations

import pytest
import torch

from defectkit.errors import InputError, MissingWeightsError
from defectkit.finetune.sam.model import (
    SAM_SPECS,
    build_sam_model,
    load_sam_state,
    sam_model_registry,
    state_dict_mismatch,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/finetune/conftest.py


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tiny_is_segment_anything_sam_with_small_encoder():
    from segment_anything.modeling import Sam

    sam = build_sam_model("tiny")
    assert isinstance(sam, Sam)
    spec = SAM_SPECS["tiny"]
    emb = sam.image_encoder(torch.zeros(1, 3, spec.image_size, spec.image_size))
    assert emb.shape == (1, spec.prompt_embed_dim, spec.embedding_size, spec.embedding_size)
    assert sum(p.numel() for p in sam.parameters()) < 1_000_000


def test_tiny_checkpoint_reloads_through_registry(tmp_path):
    torch.manual_seed(1)
    sam = build_sam_model("tiny")
    path = tmp_path / "tiny.pt"
    torch.save(sam.state_dict(), path)
    torch.manual_seed(2)  # a different random init, so equality proves the file was loaded
    again = sam_model_registry["tiny"](checkpoint=path)
    assert _same_weights(sam.state_dict(), again.state_dict())


def test_mismatch_message_counts_missing_and_unexpected_keys(tmp_path):
    sam = build_sam_model("tiny")
    state = sam.state_dict()
    dropped = sorted(state)[:2]
    for k in dropped:
        del state[k]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(InputError) as exc:
        load_sam_state(build_sam_model("tiny"), path, model_type="tiny")
    msg = str(exc.value)
    assert str(path) in msg
    assert "2 missing keys" in msg and "1 unexpected keys" in msg and dropped[0] in msg


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(MissingWeightsError, match="nope.pth: SAM checkpoint not found"):
        build_sam_model("tiny", tmp_path / "nope.pth")
    with pytest.raises(InputError, match="unknown SAM model type"):
        build_sam_model("vit_x")


def test_mismatch_helper_reports_shapes():
    a = {"w": torch.zeros(2, 3), "b": torch.zeros(3)}
    assert state_dict_mismatch(a, {"w": torch.zeros(3, 3), "c": torch.zeros(1)}) == (["b"], ["c"], ["w"])


def test_vit_b_state_dict_loads_with_segment_anything_registry(tmp_path):
    """The loading path users take: our saved state dict -> Meta's own registry builder."""
    from segment_anything import sam_model_registry as official

    torch.manual_seed(0)
    sam = build_sam_model("vit_b")
    path = tmp_path / "vit_b.pt"
    state = sam.state_dict()
    torch.save(state, path)
    del sam
    loaded = official["vit_b"](checkpoint=str(path))
    assert _same_weights(state, loaded.state_dict())
    # a tiny checkpoint given for vit_b stops with the key counts instead of load_state_dict's wall of text
    tiny_path = tmp_path / "tiny.pt"
    torch.save(build_sam_model("tiny").state_dict(), tiny_path)
    with pytest.raises(
        InputError, match=r"does not match --model-type vit_b: \d+ missing keys .*unexpected keys"
    ):
        load_sam_state(loaded, tiny_path, model_type="vit_b")
