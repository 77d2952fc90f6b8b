"""A faster forward pass of segment-anything's ``MaskDecoder`` for training on cached embeddings.

Same modules, same parameters, same mathematics as ``MaskDecoder.forward`` (outputs and gradients
agree to float32 rounding; tests compare both); only the memory layout and the kernels differ.
Measured per op on one CPU thread (``benchmarks/sam_bench.py --part decoder_ops``: vit_b decoder,
forward, loss and backward; one box 275 ms CPU with the library's pass, 174 ms with this one;
three boxes 895 -> 464 ms), the library's pass spends ~35% of its time outside matrix products
and convolutions, mostly on strided memory, and repeats per prompt work that is the same for
every prompt of an image. Here:

- image tokens stay ``B x HW x C`` contiguous throughout (the library permutes ``BxCxHxW``, so every
  add, layer norm and projection of the 4096x256 tokens runs on strided memory and copies);
- token-to-image attention uses ``F.scaled_dot_product_attention`` (one fused kernel); image-to-
  token attention (4096 queries, 7 keys) lays its scores out keys x queries, so the softmax over
  the 7 keys runs along contiguous memory;
- the first block's image-side projections run once per image, not once per prompt: the image
  tokens are the same for every prompt of an image until that block's image-to-token update;
- the output upscaling (two 2x2 stride-2 transposed convolutions, LayerNorm2d, GELU) runs as two
  matrix products on the token layout with ``F.layer_norm`` over channels, and the pixels are
  reordered once, on the mask logits instead of the 32 feature channels.

:func:`fast_decoder_supported` says whether a decoder has the structure this relies on
(segment-anything's own ``MaskDecoder`` / ``TwoWayTransformer`` with 2x2 stride-2 upscaling);
callers fall back to ``MaskDecoder.forward`` otherwise.
"""

from __future__ import annotations


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
    t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
    k = keys + key_pe
    t = queries + query_pe
    queries = layer.norm2(queries + _attend(t2i, t2i.q_proj(t), t2i.k_proj(k), t2i.v_proj(keys)))
    queries = layer.norm3(queries + layer.mlp(queries))
    t = queries + query_pe
    attn_out = _attend_image_to_token(i2t, i2t.q_proj(k), i2t.k_proj(t), i2t.v_proj(queries))
    return queries, layer.norm4(keys + attn_out)


def _attend_image_to_token(attn, q, k, v):
    """:func:`_attend` for many queries (image tokens) and few keys (prompt tokens).

    The scores are laid out keys x queries so that the softmax runs over the short key axis with
    the long query axis contiguous (a softmax over a last axis of 7 is ~20x slower per element).
    q: (1 or B) x P x Ci, k and v: B x T x Ci. Returns B x P x C.
    """
    import math

    b, t, ci = k.shape
    h = attn.num_heads
    d = ci // h
    qh = q.view(q.shape[0], -1, h, d).permute(0, 2, 3, 1)  # (1|B) x h x d x P
    kh = k.view(b, t, h, d).transpose(1, 2) * (1.0 / math.sqrt(d))  # B x h x T x d
    if q.shape[0] == 1 and b > 1:  # shared image tokens: stack the prompts' keys, no broadcast copy
        scores = (kh.transpose(0, 1).reshape(1, h, b * t, d) @ qh).view(h, b, t, -1).transpose(0, 1)
    else:
        scores = kh @ qh  # B x h x T x P
    probs = scores.softmax(dim=-2)
    vh = v.view(b, t, h, d).transpose(1, 2)  # B x h x T x d
    out = probs.transpose(-1, -2) @ vh  # B x h x P x d
    return attn.out_proj(out.transpose(1, 2).reshape(b, -1, ci))


def _conv_t2x2_as_matmul(x, conv):
    """A 2x2 stride-2 ``ConvTranspose2d`` on token-major input: B x P x Cin -> B x P x 4 x Cout,
    the 4 being the output sub-pixel (dy, dx) in row-major order."""
    import torch.nn.functional as F

    cin, cout = conv.weight.shape[:2]
    w = conv.weight.permute(2, 3, 1, 0).reshape(4 * cout, cin)  # (dy, dx, co) x ci
    return F.linear(x, w, conv.bias.repeat(4)).view(*x.shape[:-1], 4, cout)


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
    # pixels x K, not K x pixels: the gradient into x then arrives contiguous, like x itself
    masks = x.view(b, -1, x.shape[-1]) @ hyper_in.transpose(1, 2)  # B x (hw * 16) x K
    masks = masks.view(b, h, w, 2, 2, 2, 2, k).permute(0, 7, 1, 3, 5, 2, 4, 6)  # k i a a2 j b b2
    return masks.reshape(b, k, 4 * h, 4 * w)


def fast_mask_decoder(
    decoder, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, multimask_output
):
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
    attn_out = _attention(t.final_attn_token_to_image, queries + point_embedding, keys + key_pe, keys)
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
