"""The fast mask-decoder pass equals segment-anything's ``MaskDecoder.forward`` (outputs and
gradients), and the mixed-precision training path (autocast + GradScaler + fused AdamW) works."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defectkit.finetune.sam import engine as sam_engine
from defectkit.finetune.sam import fast_decoder as fd
from defectkit.finetune.sam.data import SamSample
from defectkit.finetune.sam.fast_decoder import fast_decoder_supported, fast_mask_decoder
from defectkit.finetune.sam.model import build_sam_model
from defectkit.finetune.sam.train import make_optimizer, trainable_parameters

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/finetune/conftest.py


def _vit_decoder_sam(side: int = 16):
    """tiny's encoders with the official models' decoder (width 256, 8 heads, MLP 2048) on a
    ``side`` x ``side`` embedding: the decoder vit_b/l/h train, at a test-sized image."""
    from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

    sam = build_sam_model("tiny")
    sam.prompt_encoder = PromptEncoder(
        embed_dim=256,
        image_embedding_size=(side, side),
        input_image_size=(16 * side, 16 * side),
        mask_in_chans=16,
    )
    sam.mask_decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    return sam


def _run(sam, mode, n, *, fast, multimask=False, points=False, mask_prompt=False, seed=0):
    """Decode ``n`` prompts on one random embedding, back-propagate a loss; returns
    (logits, iou, {param name: grad or None}, embedding grad or None)."""
    params = dict(sam.named_parameters())
    trainable_parameters(sam, mode)
    for p in params.values():
        p.grad = None
    g = torch.Generator().manual_seed(seed)
    pe = sam.prompt_encoder
    c, side = pe.embed_dim, pe.image_embedding_size[0]
    size = pe.input_image_size[0]
    emb = torch.randn(1, c, side, side, generator=g).requires_grad_(mode == "all")
    xy = torch.rand(n, 2, generator=g) * size * 0.6
    boxes = torch.cat([xy, xy + size * 0.3], dim=1)
    pts = (torch.rand(n, 2, 2, generator=g) * size, torch.tensor([[1, 0]] * n)) if points else None
    masks = torch.randn(n, 1, 4 * side, 4 * side, generator=g) if mask_prompt else None
    sparse, dense = pe(points=pts, boxes=boxes, masks=masks)
    args = (emb, pe.get_dense_pe(), sparse, dense, multimask)
    if fast:
        assert fast_decoder_supported(sam.mask_decoder)
        logits, iou = fast_mask_decoder(sam.mask_decoder, *args)
    else:
        logits, iou = sam.mask_decoder(*args)
    target = (torch.rand(n, 4 * side, 4 * side, generator=g) > 0.7).float()
    total, _ = sam_engine.mask_loss(logits, target, iou)
    total.mean().backward()
    grads = {k: None if p.grad is None else p.grad.clone() for k, p in params.items()}
    return logits.detach(), iou.detach(), grads, emb.grad


def _assert_close(fast, ref, what, floor=1e-3):
    fast, ref = fast.detach(), ref.detach()
    scale = max(float(ref.abs().max()), floor)
    err = float((fast - ref).abs().max())
    assert err <= 1e-4 * scale, f"{what}: max abs diff {err:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize(
    "model,mode,n,multimask,points",
    [
        ("tiny", "decoder", 1, False, False),
        ("tiny", "decoder", 3, True, True),
        ("tiny", "decoder+prompt", 3, False, True),
        ("tiny", "all", 2, True, False),
        ("vit", "decoder", 1, False, False),
        ("vit", "decoder", 3, False, False),
        ("vit", "decoder+prompt", 2, True, True),
    ],
)
def test_fast_decoder_matches_the_library_forward_and_gradients(model, mode, n, multimask, points):
    torch.manual_seed(0)
    sam = build_sam_model("tiny") if model == "tiny" else _vit_decoder_sam()
    kw = dict(multimask=multimask, points=points)
    ref_logits, ref_iou, ref_grads, ref_emb = _run(sam, mode, n, fast=False, **kw)
    logits, iou, grads, emb = _run(sam, mode, n, fast=True, **kw)
    k = 3 if multimask else 1
    side = 4 * sam.prompt_encoder.image_embedding_size[0]
    assert logits.shape == ref_logits.shape == (n, k, side, side) and iou.shape == (n, k)
    _assert_close(logits, ref_logits, "logits")
    _assert_close(iou, ref_iou, "iou")
    # the same parameters get gradients (unused mask tokens get zeros, as in the library) ...
    assert {k for k, v in grads.items() if v is not None} == {
        k for k, v in ref_grads.items() if v is not None
    }
    trained = [k for k, v in ref_grads.items() if v is not None]
    assert any(k.startswith("prompt_encoder.") for k in trained) == (mode != "decoder")
    # ... and the same values
    for name in trained:
        _assert_close(grads[name], ref_grads[name], name)
    if mode == "all":
        _assert_close(emb, ref_emb, "embedding grad")
    else:
        assert emb is None and ref_emb is None


def _grads(out, inputs, seed):
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad((out * weights).sum(), inputs)


@pytest.mark.parametrize("through_inputs", [True, False])
@pytest.mark.parametrize("n,shared", [(1, False), (2, True), (3, False)])
def test_cross_attention_through_the_inputs_equals_segment_anythings(monkeypatch, through_inputs, n, shared):
    # both directions of the decoder's cross-attention (width 256, 8 heads, ci 128), computed through
    # the C-wide inputs or through the projections, with image tokens shared by the prompts or not:
    # the values and the gradients of the library's Attention.forward
    from segment_anything.modeling.transformer import Attention

    torch.manual_seed(0)
    attn = Attention(256, 8, downsample_rate=2)
    monkeypatch.setattr(fd, "_through_inputs", lambda a, rows: through_inputs)
    tokens = torch.randn(n, 7, 256, requires_grad=True)
    image = torch.randn(1 if shared else n, 64, 256, requires_grad=True)
    pe = torch.randn(1, 64, 256)
    inputs = (tokens, image, *attn.parameters())
    k_img, full = image + pe, (image + pe).expand(n, -1, -1)

    names = ("tokens", "image", *dict(attn.named_parameters()))
    for what, got, ref in (
        (
            "token to image",
            fd._token_to_image(attn, tokens, k_img, image),
            attn(q=tokens, k=full, v=image.expand(n, -1, -1)),
        ),
        (
            "image to token",
            fd._image_to_token(attn, k_img, tokens, tokens, residual=image),
            image + attn(q=full, k=tokens, v=tokens),
        ),
    ):
        _assert_close(got, ref, what)
        grads, ref_grads = _grads(got, inputs, 1), _grads(ref, inputs, 1)
        # k_proj's bias moves every score of a softmax row alike: its gradient is zero up to rounding
        floor = max(float(r.abs().max()) for r in ref_grads)
        for g, r, name in zip(grads, ref_grads, names, strict=True):
            _assert_close(
                g, r, f"{what}, grad of {name}", floor=1e-2 * floor if name == "k_proj.bias" else 1e-3
            )


def test_cross_attention_goes_through_the_inputs_when_that_is_cheaper():
    from segment_anything.modeling.transformer import Attention

    vit = Attention(256, 8, downsample_rate=2)  # vit_b/l/h decoder: 8 heads, ci 128
    assert fd._through_inputs(vit, 7)  # one box prompt: 5 output tokens + 2 corners, 56 rows < 128
    assert fd._through_inputs(vit, 14)  # two prompts on one image's tokens: 112 < 128
    assert not fd._through_inputs(vit, 21)  # three: projecting the 4096 image tokens once is cheaper
    tiny = Attention(64, 4, downsample_rate=2)  # ci 32
    assert fd._through_inputs(tiny, 7) and not fd._through_inputs(tiny, 9)


def test_dense_pe_is_computed_once_per_state_of_the_fourier_matrix():
    sam = build_sam_model("tiny")
    pe = sam.prompt_encoder
    first = sam_engine.dense_pe(pe)
    assert torch.equal(first, pe.get_dense_pe()) and sam_engine.dense_pe(pe) is first
    state = pe.state_dict()
    state["pe_layer.positional_encoding_gaussian_matrix"] *= 2  # e.g. a checkpoint loaded in place
    pe.load_state_dict(state)
    again = sam_engine.dense_pe(pe)
    assert again is not first and torch.equal(again, pe.get_dense_pe())
    assert not torch.equal(again, first)


def test_fast_decoder_handles_per_prompt_dense_embeddings():
    # mask prompts make the dense embeddings differ per prompt: no sharing of the first block
    torch.manual_seed(0)
    sam = build_sam_model("tiny")
    ref = _run(sam, "decoder", 3, fast=False, mask_prompt=True)
    got = _run(sam, "decoder", 3, fast=True, mask_prompt=True)
    _assert_close(got[0], ref[0], "logits")
    for name, g in ref[2].items():
        if g is not None:
            _assert_close(got[2][name], g, name)


def test_decode_falls_back_to_the_library_for_other_decoder_structures():
    torch.manual_seed(0)
    sam = build_sam_model("tiny")
    assert fast_decoder_supported(sam.mask_decoder)
    sam.mask_decoder.output_upscaling[4] = torch.nn.ReLU()  # not the structure the fast pass rebuilds
    assert not fast_decoder_supported(sam.mask_decoder)
    emb = torch.randn(1, 64, 32, 32)
    boxes = torch.tensor([[10.0, 20.0, 120.0, 90.0]])
    with torch.no_grad():
        got, _ = sam_engine.decode(sam, emb, boxes)
        sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        ref, _ = sam.mask_decoder(emb, sam.prompt_encoder.get_dense_pe(), sparse, dense, False)
    assert torch.equal(got, ref)
    with pytest.raises(ValueError, match="one image"):
        fast_mask_decoder(
            build_sam_model("tiny").mask_decoder, torch.zeros(2, 64, 32, 32), emb, sparse, dense, False
        )


def _one_epoch_with_scaler(init_scale: float):
    torch.manual_seed(0)
    sam = build_sam_model("tiny")
    params = trainable_parameters(sam, "decoder")
    device = torch.device("cpu")
    optimizer = make_optimizer(params, 1e-3, 0.01, device)
    assert optimizer.defaults["fused"] is True
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    masks = np.zeros((2, 64, 64), bool)
    masks[0, 10:30, 12:40], masks[1, 40:60, 5:20] = True, True
    sample = SamSample(
        image_id=1, name="x", path=None, width=64, height=64, defect_type="d",
        boxes=np.array([[12, 10, 40, 30], [5, 40, 20, 60]], np.float32), masks=masks,
        category_ids=np.ones(2, np.int64),
    )  # fmt: skip
    emb = torch.randn(1, 64, 32, 32)
    before = [p.detach().clone() for p in params]
    stats = sam_engine.train_one_epoch(
        sam, sam_engine.Optimisation(optimizer, scheduler, params, scaler=scaler),
        sam_engine.TrainData([sample], sam_engine.lowres_targets([sample], 256, 128)),
        lambda s, train: emb, sam_engine.EpochConfig(sam_engine.PromptConfig(), batch_size=1, image_size=256),
        np.random.default_rng(0),
    )  # fmt: skip
    changed = any(not torch.equal(a, p) for a, p in zip(before, params, strict=True))
    return stats, changed, scaler.get_scale()


def test_mixed_precision_path_steps_and_skips_overflowing_steps():
    # the CUDA recipe (fp16 autocast, GradScaler: scale -> unscale_ -> clip -> step -> update),
    # run with CPU autocast and a CPU GradScaler: a finite step updates the weights ...
    stats, changed, scale = _one_epoch_with_scaler(2.0**10)
    assert changed and np.isfinite(stats["loss"]) and scale == 2.0**10
    # ... an overflowing one (fp16 gradients at scale 2^100 are inf) is skipped and the scale halves
    stats, changed, scale = _one_epoch_with_scaler(2.0**100)
    assert not changed and scale == 2.0**99
