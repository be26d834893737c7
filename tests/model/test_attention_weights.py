"""The attention-weights engine (sinklab.model.attention_weights) against naive loops, option by option."""

from __future__ import annotations

import math

import pytest
import torch

from sinklab.model.attention_weights import (
    BlockInfo,
    Scratch,
    block_weights,
    causal_bias,
    repeat_kv,
    softmax_with_sink,
)

B, H, T, D = 2, 4, 11, 8
SCALE = D**-0.5


def inputs(seed: int = 0, heads_kv: int = H, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, T, D, generator=gen, dtype=torch.float64) * 2
    k = torch.randn(B, heads_kv, T, D, generator=gen, dtype=torch.float64) * 2
    return q.to(dtype), k.to(dtype)


def naive(q, k, scale, visible, bias=None, softcap=None, sink=None, kernel=None):
    """Weights (B, H, T, S) and sink mass (B, H, T) | None, row by row in python floats.

    visible(b, h, i, j) -> bool; bias(b, h, i, j) -> float; kernel: visible scores -> weights of the row."""
    b_, h_, t, d = q.shape
    s = k.shape[2]
    rep = h_ // k.shape[1]
    weights = torch.zeros(b_, h_, t, s, dtype=torch.float64)
    mass = torch.zeros(b_, h_, t, dtype=torch.float64)
    for b in range(b_):
        for h in range(h_):
            for i in range(t):
                cols, scores = [], []
                for j in range(s):
                    x = sum(float(q[b, h, i, c]) * float(k[b, h // rep, j, c]) for c in range(d)) * scale
                    if softcap is not None:
                        x = softcap * math.tanh(x / softcap)
                    if bias is not None:
                        x += bias(b, h, i, j)
                    if visible(b, h, i, j):
                        cols.append(j)
                        scores.append(x)
                if kernel is not None:
                    row = kernel(scores, i)
                else:
                    top = max(scores + ([float(sink[h])] if sink is not None else []))
                    z = sum(math.exp(x - top) for x in scores)
                    if sink is not None:
                        z += math.exp(float(sink[h]) - top)
                        mass[b, h, i] = math.exp(float(sink[h]) - top) / z
                    row = [math.exp(x - top) / z for x in scores]
                for j, w in zip(cols, row, strict=True):
                    weights[b, h, i, j] = w
    return weights, (mass if sink is not None else None)


def causal(b, h, i, j):
    return j <= i


def by_blocks(q, k, block, bias=None, **kw):
    """The engine over query blocks with the causal offset; each block padded with zeros to T keys."""
    rows, slots = [], []
    for start in range(0, T, block):
        stop = min(start + block, T)
        rows_bias = bias[..., start:stop, :] if bias is not None else None
        w, slot = block_weights(q[:, :, start:stop], k, SCALE, causal=start, bias=rows_bias, **kw)
        assert w.shape[-1] == stop  # only the keys the block can see
        rows.append(torch.nn.functional.pad(w, (0, T - stop)))
        slots.append(slot)
    slot = torch.cat(slots, dim=2) if slots[0] is not None else None
    return torch.cat(rows, dim=2), slot


def close(a, b, atol=1e-5):
    torch.testing.assert_close(a.double(), b.double(), rtol=0, atol=atol)


@pytest.mark.parametrize("block", [1, 4, T])
def test_causal_fast_path_over_query_blocks(block):
    q, k = inputs()
    ref, _ = naive(q, k, SCALE, causal)
    with torch.no_grad():  # in place, in one reused buffer
        scratch = Scratch()
        got = torch.cat(
            [
                torch.nn.functional.pad(
                    block_weights(q[:, :, s : s + block], k, SCALE, causal=s, scratch=scratch)[0].clone(),
                    (0, T - min(s + block, T)),
                )
                for s in range(0, T, block)
            ],
            dim=2,
        )
    close(got, ref)
    close(by_blocks(q, k, block)[0], ref)  # with autograd: no in-place step


def test_boolean_mask():
    q, k = inputs(1)
    gen = torch.Generator().manual_seed(5)
    allowed = torch.rand(B, 1, T, T, generator=gen) < 0.5
    allowed |= torch.eye(T, dtype=torch.bool)  # every row keeps a key
    ref, _ = naive(q, k, SCALE, lambda b, h, i, j: bool(allowed[b, 0, i, j]))
    close(block_weights(q, k, SCALE, allowed=allowed)[0], ref)
    with torch.no_grad():
        close(block_weights(q, k, SCALE, allowed=allowed, scratch=Scratch())[0], ref)


def test_additive_float_mask():
    """An HF additive mask: the dtype's minimum where a key is hidden, 0 elsewhere (here a window of 3)."""
    q, k = inputs(2)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    hidden = (j > i) | (j <= i - 3)
    mask = torch.zeros(T, T).masked_fill(hidden, torch.finfo(torch.float32).min)[None, None]
    ref, _ = naive(q, k, SCALE, lambda b, h, i, j: not bool(hidden[i, j]))
    close(block_weights(q, k, SCALE, bias=mask)[0], ref)


def test_softcap():
    q, k = inputs(3)
    ref, _ = naive(q, k, SCALE, causal, softcap=1.5)
    close(by_blocks(q, k, 4, softcap=1.5)[0], ref)
    with torch.no_grad():
        close(by_blocks(q, k, 4, softcap=1.5, scratch=Scratch())[0], ref)


def test_sink_logit_weights_and_slot_sum_to_one():
    q, k = inputs(4)
    sink = torch.tensor([0.0, 1.0, -2.0, 3.0])
    ref, ref_mass = naive(q, k, SCALE, causal, sink=sink)
    got, mass = by_blocks(q, k, 4, sink_logit=sink)
    close(got, ref)
    close(mass, ref_mass)
    close(got.sum(-1) + mass, torch.ones(B, H, T))


def test_softmax_with_sink_is_a_softmax_with_one_more_logit():
    scores = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    z = torch.randn(3, dtype=torch.float64)
    full = torch.cat([z.view(1, 3, 1, 1).expand(2, 3, 5, 1), scores], dim=-1).softmax(-1)
    w, mass = softmax_with_sink(scores, z)
    torch.testing.assert_close(w, full[..., 1:])
    torch.testing.assert_close(mass, full[..., 0])


def test_grouped_query_heads():
    q, k = inputs(5, heads_kv=2)
    ref, _ = naive(q, k, SCALE, causal)
    close(by_blocks(q, k, 4)[0], ref)
    torch.testing.assert_close(repeat_kv(k, 2), k.repeat_interleave(2, dim=1))


def test_position_bias():
    q, k = inputs(6)
    bias = torch.randn(H, T, T, generator=torch.Generator().manual_seed(7))
    ref, _ = naive(q, k, SCALE, causal, bias=lambda b, h, i, j: float(bias[h, i, j]))
    close(by_blocks(q, k, 4, bias=bias)[0], ref)


def test_sigmoid_kernel():
    """A kernel that is no softmax: sigmoid of the scores, 0 on hidden keys, no normalisation."""
    q, k = inputs(8)

    def sigmoid(scores, allowed, info):
        return torch.sigmoid(scores) * allowed, None

    ref, _ = naive(q, k, SCALE, causal, kernel=lambda s, i: [1 / (1 + math.exp(-x)) for x in s])
    close(by_blocks(q, k, 4, kernel=sigmoid)[0], ref)


def test_kernel_gets_the_block_positions():
    """Without an explicit BlockInfo, query i of a block at causal offset c sits at 1-based position c + i + 1
    (ReLU attention divides by it)."""
    q, k = inputs(9)

    def relu(scores, allowed, info):
        return torch.relu(scores) * allowed / info.query_pos.view(1, 1, -1, 1), None

    ref, _ = naive(q, k, SCALE, causal, kernel=lambda s, i: [max(x, 0.0) / (i + 1) for x in s])
    close(by_blocks(q, k, 4, kernel=relu)[0], ref)
    info = BlockInfo(query_pos=torch.arange(1, T + 1), seq_len=T)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    close(block_weights(q, k, SCALE, allowed=allowed, kernel=relu, info=info)[0], ref)


def test_scores_stay_in_the_input_dtype_then_fp32():
    """Under bf16 the matmul runs in bf16 (no silent switch to fp32 matmuls), the softmax in fp32."""
    q, k = inputs(10, dtype=torch.bfloat16)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    got, _ = block_weights(q, k, SCALE, allowed=allowed)
    assert got.dtype == torch.float32
    hidden = ~allowed
    bf16 = ((q * SCALE) @ k.transpose(-1, -2)).float().masked_fill(hidden, float("-inf")).softmax(-1)
    fp32 = ((q.float() * SCALE) @ k.float().transpose(-1, -2)).masked_fill(hidden, float("-inf")).softmax(-1)
    close(got, bf16, atol=1e-6)
    assert (bf16 - fp32).abs().max() > 1e-4  # the check above tells the two apart


def test_causal_bias():
    got = causal_bias(1, 3, device=torch.device("cpu"))
    inf = float("-inf")
    assert got.tolist() == [[0.0, 0.0, inf], [0.0, 0.0, 0.0]]
    low = torch.finfo(torch.bfloat16).min
    assert causal_bias(0, 2, device=torch.device("cpu"), dtype=torch.bfloat16, fill=low).tolist() == [
        [0.0, low],
        [0.0, 0.0],
    ]
