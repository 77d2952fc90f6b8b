"""A faster forward pass of segment-anything's ``MaskDecoder`` for training on cached embeddings.

Same modules, same parameters, same mathematics as ``MaskDecoder.forward`` (outputs and gradients
agree to float32 rounding; tests compare both); the order of the products, the memory layout and
the kernels differ. Measured per op on one CPU thread (``benchmarks/sam_bench.py --part
decoder_ops``: vit_b decoder, forward, loss and backward; one box ~270 ms CPU with the library's
pass, ~130 ms with this one; three boxes ~950 -> ~390 ms). Here:

- cross-attention between the few prompt tokens (T = 7 for a box: 5 output tokens, 2 corners) and
  the 4096 image tokens goes *through the inputs* when that is cheaper (:func:`_through_inputs`):
  the projections of the image side fold into the prompt side (scores = (q W_k) . x, values =
  (probs . x) W_v^T, and image-to-token's output projection into its values), so each of the
  3 cross-attentions costs P x C x (heads x T) multiply-adds per direction instead of P x C x ci for
  every projection of the image tokens: 56 instead of 128 per image token and product for vit_b;
- image tokens stay ``B x HW x C`` contiguous throughout (the library permutes ``BxCxHxW``, so every
  add, layer norm and projection of the 4096x256 tokens runs on strided memory and copies);
  the embedding cache hands out embeddings already laid out that way;
- image-to-token attention (4096 queries, 7 keys) lays its scores out keys x queries, so the
  softmax over the 7 keys runs along contiguous memory; its residual add rides on the product;
- with more prompts on one image than folding pays for, the first block's image-side projections
  run once per image (fused attention), not once per prompt;
- the output upscaling (two 2x2 stride-2 transposed convolutions, LayerNorm2d, GELU) runs as two
  matrix products on the token layout with ``F.layer_norm`` over channels, the pixels are
  reordered once, on the mask logits instead of the 32 feature channels, and the gradient of the
  single-mask product is a broadcast multiply instead of an outer-product matmul.

:func:`fast_decoder_supported` says whether a decoder has the structure this relies on
(segment-anything's own ``MaskDecoder`` / ``TwoWayTransformer`` with 2x2 stride-2 upscaling);
callers fall back to ``MaskDecoder.forward`` otherwise.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only
    from segment_anything.modeling import MaskDecoder
    from torch import Tensor


def fast_decoder_supported(decoder) -> bool:
    """True when ``decoder`` is segment-anything's ``MaskDecoder`` built the standard way."""
    import torch
    from segment_anything.modeling import MaskDecoder, TwoWayTransformer
    from segment_anything.modeling.common import LayerNorm2d
    from segment_anything.modeling.transformer import TwoWayAttentionBlock

    if type(decoder) is not MaskDecoder or type(decoder.transformer) is not TwoWayTransformer:
        return False
    if not all(type(layer) is TwoWayAttentionBlock for layer in decoder.transformer.layers):
        return False
    up = list(decoder.output_upscaling)
    kinds = [torch.nn.ConvTranspose2d, LayerNorm2d, torch.nn.GELU, torch.nn.ConvTranspose2d, torch.nn.GELU]
    if len(up) != len(kinds) or any(type(m) is not k for m, k in zip(up, kinds, strict=True)):
        return False
    return all(
        c.kernel_size == (2, 2)
        and c.stride == (2, 2)
        and c.padding == (0, 0)
        and c.groups == 1
        and c.dilation == (1, 1)
        and c.output_padding == (0, 0)
        and c.bias is not None
        for c in (up[0], up[3])
    )


def _heads(x, num_heads: int):
    """B x N x C -> B x heads x N x C/heads (a view)."""
    b, n, c = x.shape
    return x.view(b, n, num_heads, c // num_heads).transpose(1, 2)


def _attend(attn, q, k, v):
    """The rest of ``segment_anything...Attention.forward`` after its input projections, with
    fused attention. q: Bq x Nq x Ci, k and v: Bk x Nk x Ci (projected), Bk == Bq or Bk == 1 (keys
    shared by every query batch: the queries are stacked into one batch of Bq * Nq).
    Returns Bq x Nq x C.
    """
    import torch.nn.functional as F

    bq, nq, ci = q.shape
    h = attn.num_heads
    if k.shape[0] == 1 and bq > 1:  # one key set: all prompts' tokens attend to it in one batch
        q = q.reshape(1, bq * nq, ci)
    out = F.scaled_dot_product_attention(_heads(q, h), _heads(k, h), _heads(v, h))
    return attn.out_proj(out.transpose(1, 2).reshape(bq, nq, ci))


def _attention(attn, q, k, v):
    """``segment_anything...Attention.forward(q, k, v)`` (k, v: see :func:`_attend`)."""
    return _attend(attn, attn.q_proj(q), attn.k_proj(k), attn.v_proj(v))


def _block(layer, queries, keys, query_pe, key_pe):
    """``TwoWayAttentionBlock.forward`` on token-major keys (``keys + key_pe`` is computed once;
    the library computes it twice with the same ``keys``)."""
    if layer.skip_first_layer_pe:
        queries = layer.self_attn(q=queries, k=queries, v=queries)
    else:
        q = queries + query_pe
        queries = queries + layer.self_attn(q=q, k=q, v=queries)
    queries = layer.norm1(queries)
    k = keys + key_pe
    t2i = _token_to_image(layer.cross_attn_token_to_image, queries + query_pe, k, keys)
    queries = layer.norm2(queries + t2i)
    queries = layer.norm3(queries + layer.mlp(queries))
    keys = _image_to_token(layer.cross_attn_image_to_token, k, queries + query_pe, queries, residual=keys)
    return queries, layer.norm4(keys)


def _through_inputs(attn, rows: int) -> bool:
    """Whether attention between ``rows`` prompt tokens (all prompts that share one image-token set)
    and the image tokens is cheaper through the C-wide image tokens than through their projections.

    Projecting P image tokens costs P x C x ci multiply-adds per projection, whatever the number of
    prompt tokens; folding the projection into the prompt side instead (scores = (q W_k) . x,
    values = (probs . x) W_v^T) costs P x C per head and prompt token: cheaper when
    rows x heads < ci (vit_b's cross-attention: 8 heads x 7 tokens = 56 < 128, for one or two prompts).
    """
    return rows * attn.num_heads < attn.internal_dim


def _head_weights(linear, heads: int):
    """A ``Linear(C -> ci)`` as per-head views: weight heads x d x C, bias heads x d x 1."""
    ci, c = linear.weight.shape
    return linear.weight.view(heads, ci // heads, c), linear.bias.view(heads, ci // heads, 1)


def _token_to_image(attn, t, k_img, v_img):
    """``attn(q=t, k=k_img, v=v_img)``: prompt tokens t (B x T x C) attend to image tokens
    k_img, v_img ((1 or B) x P x C; 1: shared by every prompt). Returns B x T x C.

    Through the inputs (see :func:`_through_inputs`): per head, scores = (q_h W_k,h) . x + q_h . b_k,h
    and out_h = (probs_h . v_img) W_v,h^T + b_v,h (the probabilities sum to one): the same values
    as projecting every image token, with P x C x (heads x T) multiply-adds instead of P x C x ci.
    """
    import math

    b, n_t, c = t.shape
    h = attn.num_heads
    shared = k_img.shape[0] == 1 and b > 1
    if not _through_inputs(attn, n_t * (b if shared else 1)):
        return _attention(attn, t, k_img, v_img)
    wk, bk = _head_weights(attn.k_proj, h)
    wv, bv = _head_weights(attn.v_proj, h)
    q = _heads(attn.q_proj(t), h) * (1.0 / math.sqrt(wk.shape[1]))  # B x h x T x d
    a = (q @ wk).reshape(b, h * n_t, c)  # each head's query seen through k_proj
    const = (q @ bk).reshape(b, h * n_t, 1)  # k_proj's bias (constant over the image tokens)
    if shared:  # every prompt's rows in one product with the shared image tokens
        probs = ((a.reshape(-1, c) @ k_img[0].t()).view(b, h * n_t, -1) + const).softmax(dim=-1)
        y = probs.reshape(b * h * n_t, -1) @ v_img[0]
    else:
        probs = (a @ k_img.transpose(1, 2) + const).softmax(dim=-1)  # B x hT x P
        y = probs @ v_img
    out = y.view(b, h, n_t, c) @ wv.transpose(1, 2) + bv.transpose(1, 2)  # B x h x T x d
    return attn.out_proj(out.transpose(1, 2).reshape(b, n_t, -1))


def _image_to_token(attn, q_img, k_tok, v_tok, residual):
    """``residual + attn(q=q_img, k=k_tok, v=v_tok)``: image tokens q_img ((1 or B) x P x C) attend
    to prompt tokens k_tok, v_tok (B x T x C); residual: (1 or B) x P x C. Returns B x P x C.

    The scores are laid out B x heads x T x P so that the softmax over the T keys runs with the
    long P axis contiguous (a softmax over a last axis of 7 is ~20x slower per element). Through
    the inputs (see :func:`_through_inputs`): scores_h = x . (W_q,h^T k_h) + b_q,h . k_h, and the
    output projection folds into the values: out = sum_h probs_h^T (v_h W_o,h^T) + b_o.
    """
    import math

    import torch

    b, n_t, c = k_tok.shape
    h, ci = attn.num_heads, attn.internal_dim
    d = ci // h
    shared = q_img.shape[0] == 1 and b > 1
    k = _heads(attn.k_proj(k_tok), h) * (1.0 / math.sqrt(d))  # B x h x T x d
    if _through_inputs(attn, n_t * (b if shared else 1)):
        wq, bq = _head_weights(attn.q_proj, h)
        m = (k @ wq).reshape(-1, c)  # (B h T) x C
        rows = m @ q_img[0].t() if shared else m.view(b, h * n_t, c) @ q_img.transpose(1, 2)
        scores = rows.view(b, h, n_t, -1) + k @ bq  # + q_proj's bias . k
    else:
        qh = attn.q_proj(q_img)
        qh = qh.view(qh.shape[0], -1, h, d).permute(0, 2, 3, 1)  # (1|B) x h x d x P
        if shared:  # stack the prompts' keys, no broadcast copy of the image tokens
            scores = (k.transpose(0, 1).reshape(1, h, b * n_t, d) @ qh).view(h, b, n_t, -1).transpose(0, 1)
        else:
            scores = k @ qh  # B x h x T x P
    probs = scores.softmax(dim=2)
    v = _heads(attn.v_proj(v_tok), h)  # B x h x T x d
    if _through_inputs(attn, n_t):
        wo = attn.out_proj.weight.view(c, h, d).permute(1, 2, 0)  # h x d x C
        u = (v @ wo).reshape(b, h * n_t, c)  # each head's values through out_proj
        base = (residual + attn.out_proj.bias).expand(b, -1, -1)
        return torch.baddbmm(base, probs.reshape(b, h * n_t, -1).transpose(1, 2), u)
    out = probs.transpose(-1, -2) @ v  # B x h x P x d
    return residual + attn.out_proj(out.transpose(1, 2).reshape(b, -1, ci))


def _conv_t2x2_as_matmul(x, conv):
    """A 2x2 stride-2 ``ConvTranspose2d`` on token-major input: B x P x Cin -> B x P x 4 x Cout,
    the 4 being the output sub-pixel (dy, dx) in row-major order."""
    import torch.nn.functional as F

    cin, cout = conv.weight.shape[:2]
    w = conv.weight.permute(2, 3, 1, 0).reshape(4 * cout, cin)  # (dy, dx, co) x ci
    return F.linear(x, w, conv.bias.repeat(4)).view(*x.shape[:-1], 4, cout)


@functools.cache
def _pixel_product():
    """An autograd function: ``x @ h.transpose(1, 2)`` for pixel features x (B x N x C) and mask
    token features h (B x K x C) -> B x N x K, the same values and gradients as the matrix product.

    Its backward computes the input gradient of the usual single mask (K = 1) as a broadcast
    multiply: as a matrix product with an inner size of 1 (an outer product) it takes several times
    longer than one pass over the N x C output. Pixels x K, not K x pixels: the gradient into x then
    arrives contiguous, like x itself.
    """
    import torch

    class PixelProduct(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, h):
            ctx.save_for_backward(x, h)
            return x @ h.transpose(1, 2)

        @staticmethod
        def backward(ctx, grad):
            x, h = ctx.saved_tensors
            gx = gh = None
            if ctx.needs_input_grad[0]:
                hg = h.to(grad.dtype)
                gx = grad * hg if h.shape[1] == 1 else grad @ hg
            if ctx.needs_input_grad[1]:
                gh = grad.transpose(1, 2) @ x.to(grad.dtype)
            return gx, gh

    return PixelProduct


def _upscale_and_predict(decoder, tokens, hyper_in, h: int, w: int):
    """``output_upscaling`` then ``hyper_in @ upscaled`` on token-major image tokens.

    tokens: B x (h*w) x C; hyper_in: B x K x C/8. Returns B x K x 4h x 4w mask logits with
    ``masks[b, k, 4i + 2a + a2, 4j + 2b + b2]`` built from token (i, j), sub-pixels (a, b), (a2, b2).
    """
    import torch.nn.functional as F

    ct1, ln, act1, ct2, act2 = decoder.output_upscaling
    x = _conv_t2x2_as_matmul(tokens, ct1)  # B x hw x 4 x C1
    x = act1(F.layer_norm(x, (x.shape[-1],), ln.weight, ln.bias, ln.eps))  # LayerNorm2d = LN over C1
    x = act2(_conv_t2x2_as_matmul(x, ct2))  # B x hw x 4 x 4 x C2
    b, k = hyper_in.shape[:2]
    masks = _pixel_product().apply(x.view(b, -1, x.shape[-1]), hyper_in)  # B x (hw * 16) x K
    masks = masks.view(b, h, w, 2, 2, 2, 2, k).permute(0, 7, 1, 3, 5, 2, 4, 6)  # k i a a2 j b b2
    return masks.reshape(b, k, 4 * h, 4 * w)


def fast_mask_decoder(
    decoder: MaskDecoder,
    image_embeddings: Tensor,
    image_pe: Tensor,
    sparse_prompt_embeddings: Tensor,
    dense_prompt_embeddings: Tensor,
    multimask_output: bool,
) -> tuple[Tensor, Tensor]:
    """``decoder(image_embeddings=..., ...)`` computed faster; same arguments, same results.

    image_embeddings: 1 x C x h x w (one image; every prompt is decoded against it);
    image_pe: 1 x C x h x w; sparse: B x T x C; dense: B x C x h x w (rows that are views of one
    row, as the prompt encoder returns without mask prompts, let the first block share work).
    Returns (masks B x K x 4h x 4w logits, iou_pred B x K), K = 3 with ``multimask_output`` else 1.
    """
    import torch

    t = decoder.transformer
    bsz = sparse_prompt_embeddings.shape[0]
    _, c, h, w = image_embeddings.shape
    if image_embeddings.shape[0] != 1:
        raise ValueError(f"fast_mask_decoder: one image at a time, got {image_embeddings.shape[0]}")
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    point_embedding = torch.cat(
        (output_tokens.unsqueeze(0).expand(bsz, -1, -1), sparse_prompt_embeddings), dim=1
    )
    shared = dense_prompt_embeddings.stride(0) == 0 or bsz == 1  # every prompt sees the same image
    dense = dense_prompt_embeddings[:1] if shared else dense_prompt_embeddings
    keys = (image_embeddings + dense).flatten(2).transpose(1, 2).contiguous()  # (1 or B) x hw x C
    key_pe = image_pe.flatten(2).transpose(1, 2).contiguous()  # 1 x hw x C
    queries = point_embedding
    for layer in t.layers:
        queries, keys = _block(layer, queries, keys, point_embedding, key_pe)
    attn_out = _token_to_image(t.final_attn_token_to_image, queries + point_embedding, keys + key_pe, keys)
    queries = t.norm_final_attn(queries + attn_out)
    if keys.shape[0] != bsz:  # depth 0: nothing made the keys per prompt
        keys = keys.expand(bsz, -1, -1)

    n_masks = decoder.num_mask_tokens
    mask_tokens_out = queries[:, 1 : 1 + n_masks, :]
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1
    )
    keep = slice(1, None) if multimask_output else slice(0, 1)
    # every mask token's hypernetwork still runs (its zero gradient reaches AdamW as in the library)
    masks = _upscale_and_predict(decoder, keys, hyper_in[:, keep], h, w)
    iou_pred = decoder.iou_prediction_head(queries[:, 0, :])
    return masks, iou_pred[:, keep]
