"""Attention weights of one block of queries: the one engine behind every place that computes them.

SinkLM's blockwise and reference paths and the weights its attention feeds a record (`Attention._block`), and
the Hugging Face hook's recomputation (`sinklab.measure.hook.feed_attention`) all call `block_weights`:
    scores = (q * scale) k^T          matmul in the input dtype, then promoted to at least fp32
    -> softcap * tanh(scores / softcap)   (Gemma2: after the scale, before any bias or mask)
    -> + bias                         (a position bias, or an additive mask of large negatives)
    -> mask                           (a boolean `allowed` and/or an implicit causal offset)
    -> weights                        softmax, with an optional sink logit in its denominator, or a kernel's
                                      `weights(scores, allowed, info)` (sinklab.model.kernels)
Grouped-query K/V heads are repeated here (`repeat_kv`, the one copy of that step).

Speed (the recomputation on the side of an HF forward costs about what the forward itself does, so it counts):
- plain causal softmax: the scale and the causal mask go into one `torch.baddbmm`, no extra pass;
- a causal block computes only the keys it can see (about half the work);
- without autograd, softcap, bias, mask and softmax run in place, and with a `Scratch` the score block lives
  in one reused fp32 buffer (a fresh multi-MB tensor per block costs more in page faults than the softmax).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class BlockInfo:
    """Where a block of queries sits: `query_pos` (q,) is the 1-based position of each query in the token
    sequence (a prepended sink token counts), `seq_len` the number of tokens in the sequence."""

    query_pos: torch.Tensor
    seq_len: int


# scores (B, H, q, S), allowed (bool, broadcastable to scores), info -> (weights, extra logit's mass or None)
KernelFn = Callable[[torch.Tensor, torch.Tensor, BlockInfo], tuple[torch.Tensor, torch.Tensor | None]]


class Scratch:
    """One reusable fp32 buffer for the score blocks of a forward pass (no autograd)."""

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None

    def get(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        numel = math.prod(shape)
        if self._buffer is None or self._buffer.numel() < numel or self._buffer.device != device:
            self._buffer = torch.empty(numel, dtype=torch.float32, device=device)
        return self._buffer[:numel].view(shape)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, Hkv, T, D) -> (B, Hkv * n_rep, T, D): K/V head g serves query heads g * n_rep .. (g + 1) * n_rep
    - 1 (grouped-query attention; the same order as `repeat_interleave` on dim 1)."""
    if n_rep == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)


def causal_bias(
    start: int,
    stop: int,
    *,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    fill: float = float("-inf"),
) -> torch.Tensor:
    """(stop - start, stop) additive mask of queries at key positions start..stop-1 over the keys they can
    see: 0 where key j <= query i, `fill` after (-inf for a softmax; an eager attention function wants the
    dtype's minimum, which keeps a fully masked row finite)."""
    rows = torch.arange(start, stop, device=device)[:, None]
    keys = torch.arange(stop, device=device)[None, :]
    return torch.zeros(stop - start, stop, dtype=dtype, device=device).masked_fill_(keys > rows, fill)


def softmax_with_sink(scores: torch.Tensor, sink_logit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """exp(s_j) / (exp(z_h) + sum_j exp(s_j)) over the last axis of scores (B, H, q, S), masked keys at
    -inf, and the mass exp(z_h) / (...) (B, H, q) that the sink logit z_h (H,) takes (gpt-oss; z = 0 is the
    off-by-one softmax)."""
    z = sink_logit.to(device=scores.device, dtype=scores.dtype).view(1, -1, 1, 1)
    lse = torch.logaddexp(torch.logsumexp(scores, dim=-1, keepdim=True), z)
    return torch.exp(scores - lse), torch.exp(z - lse).squeeze(-1)


def masked_softmax(
    scores: torch.Tensor,
    allowed: torch.Tensor | None = None,
    sink_logit: torch.Tensor | None = None,
    *,
    inplace: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax over the keys `allowed` marks (all when None), a sink logit (H,) joining the denominator when
    given: (weights, the sink logit's mass or None). `inplace` overwrites scores (no autograd)."""
    if allowed is not None:
        fill = scores.masked_fill_ if inplace else scores.masked_fill
        scores = fill(~allowed, float("-inf"))
    if sink_logit is not None:
        return softmax_with_sink(scores, sink_logit)
    if inplace and scores.is_contiguous():
        return torch.softmax(scores, dim=-1, out=scores), None
    return scores.softmax(dim=-1), None


def _add(scores: torch.Tensor, other: torch.Tensor, inplace: bool) -> torch.Tensor:
    """scores + other, in place when allowed and the result keeps scores' dtype."""
    if inplace and torch.promote_types(scores.dtype, other.dtype) == scores.dtype:
        return scores.add_(other)
    return scores + other


def block_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    scale: float,
    *,
    allowed: torch.Tensor | None = None,
    causal: int | None = None,
    bias: torch.Tensor | None = None,
    softcap: float | None = None,
    sink_logit: torch.Tensor | None = None,
    kernel: KernelFn | None = None,
    info: BlockInfo | None = None,
    scratch: Scratch | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weights (B, H, q, S') of one query block, in at least fp32, and the mass (B, H, q) of an extra logit
    (a sink logit, or a kernel's), else None.

    q (B, H, q, D); k (B, Hkv, S, D), H a multiple of Hkv; `scale` multiplies q . k.
    allowed: boolean, broadcastable to (B, H, q, S); True = may attend.
    causal: query i of the block sits at key position causal + i and sees keys <= its position; keys past the
        block's last query are not computed, so S' = causal + q (S' = S without `causal`).
    bias: additive float, broadcastable to (B, H, q, S): a position bias or an additive mask.
    softcap: scores -> softcap * tanh(scores / softcap) before bias and mask.
    sink_logit: (H,) a logit in the softmax denominator that belongs to no key; its mass is returned.
    kernel: scores, allowed, info -> (weights, extra mass); None is softmax. `info` defaults to the queries at
        1-based positions causal + 1.. (1.. without `causal`) of a sequence of S tokens.
    scratch: a reused buffer for the score block (fp32 inputs without autograd only): the weights returned
        live in it until the next call, so a caller consumes them first.
    """
    b, h, q_len, _ = q.shape
    seq_len = k.shape[2]
    k = repeat_kv(k, h // k.shape[1])
    if causal is not None:
        n_keys = causal + q_len
        k = k[:, :, :n_keys]
        allowed = allowed[..., :n_keys] if allowed is not None else None
        bias = bias[..., :n_keys] if bias is not None else None
    n_keys = k.shape[2]
    inplace = not torch.is_grad_enabled()
    out = None
    if scratch is not None and inplace and q.dtype == torch.float32 and k.dtype == torch.float32:
        out = scratch.get((b * h, q_len, n_keys), q.device)
    k_t = k.flatten(0, 1).transpose(1, 2)  # (B*H, D, S): one batched GEMM
    plain_causal = causal is not None and allowed is None and bias is None and softcap is None
    if plain_causal and kernel is None:
        # The scale and the causal mask inside the GEMM itself: scores = bias + scale * q k^T.
        mask = causal_bias(causal, n_keys, device=q.device, dtype=q.dtype)
        scores = torch.baddbmm(mask, q.flatten(0, 1), k_t, alpha=scale, out=out)
    else:
        scores = torch.bmm((q * scale).flatten(0, 1), k_t, out=out)  # scaling q costs q*D, not q*S
    # Weights in at least fp32 (softmax in fp32 under bf16 training); the matmul stays in the input dtype.
    scores = scores.view(b, h, q_len, n_keys).to(torch.promote_types(q.dtype, torch.float32))
    if softcap is not None:
        if inplace:
            scores = scores.div_(softcap).tanh_().mul_(softcap)
        else:
            scores = torch.tanh(scores / softcap) * softcap
    if bias is not None:
        scores = _add(scores, bias, inplace)
    if kernel is not None:
        if causal is not None:
            visible = causal_bias(causal, n_keys, device=q.device) == 0
            allowed = visible if allowed is None else allowed & visible
        elif allowed is None:
            allowed = torch.ones(q_len, n_keys, dtype=torch.bool, device=q.device)
        if info is None:
            first = causal if causal is not None else 0
            query_pos = torch.arange(first + 1, first + q_len + 1, device=q.device)
            info = BlockInfo(query_pos=query_pos, seq_len=seq_len)
        return kernel(scores, allowed, info)
    if causal is not None and not plain_causal:
        scores = _add(scores, causal_bias(causal, n_keys, device=q.device, dtype=scores.dtype), inplace)
    return masked_softmax(scores, allowed, sink_logit, inplace=inplace)


def first_key_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    lse: torch.Tensor,
    scale: float,
    n_keys: int,
    start: int,
    *,
    allowed: torch.Tensor | None = None,
    causal: bool = True,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax weights (B, H, q - start, n_keys) of queries start.. on the first `n_keys` keys only, from each
    query row's log-sum-exp: A[i, j] = exp(scale q_i . k_j + bias - lse_i), exact for plain softmax rows (no
    softcap, no sink logit), and O(q n_keys D) instead of O(q S D).

    q (B, H, q, D); k (B, Hkv, S, D); lse (B, H, q) of the rows as the fused kernel computed them (fp32).
    allowed: boolean mask over (.., q, S) (True = may attend), or bias: an additive mask; with neither,
    `causal` hides key j > i. Rows with no visible key (lse = -inf) get 0."""
    h = q.shape[1]
    keys = repeat_kv(k[:, :, :n_keys], h // k.shape[1]).float()
    scores = torch.matmul(q[:, :, start:].float() * scale, keys.transpose(-1, -2))  # (B, H, q', n_keys)
    if bias is not None:
        scores = scores + bias[..., start:, :n_keys].float()
    if allowed is not None:
        scores = scores.masked_fill(~allowed[..., start:, :n_keys], float("-inf"))
    elif bias is None and causal and n_keys > start + 1:
        # Only queries before key j can miss it: i < j needs j > start, so only n_keys > start + 1.
        rows = torch.arange(start, q.shape[2], device=q.device)[:, None]
        scores = scores.masked_fill(torch.arange(n_keys, device=q.device)[None, :] > rows, float("-inf"))
    return torch.exp(scores - lse[:, :, start:, None].float()).nan_to_num_(0.0)
