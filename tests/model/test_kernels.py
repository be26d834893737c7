"""Every kernel against a naive loop written from the paper's formulas (nope positions, causal mask)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sinklab.model.attention import Attention, AttentionContext
from sinklab.model.kernels import KERNELS
from sinklab.model.masks import MASKS
from sinklab.model.positions import POSITIONS
from sinklab.observe import WeightsObserver, attention_maps

from .helpers import NAIVE_KERNELS, naive_weight_row, tiny_config

CASES = [(name, norm) for name in KERNELS.names() for norm in KERNELS.get(name).normalize_options]
EXTRA_OPTIONS = {"softmax_scaled": {"alpha": 0.3}, "softmax_pnorm": {"p": 0.5}, "sigmoid_pnorm": {"p": 2.0}}


def test_every_kernel_has_a_naive_reference():
    assert set(KERNELS.names()) <= set(NAIVE_KERNELS)


def naive_phi(attn: Attention, name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "linear_elu":
        return torch.where(x > 0, x, torch.exp(x) - 1) + 1
    if name == "linear_mlp":
        hidden = (x @ attn.kernel.fc1.weight.T).clamp_min(0)
        return hidden @ attn.kernel.fc2.weight.T
    return x


def run_naive(attn: Attention, x: torch.Tensor, name: str, acfg, t: int):
    """Loops over batch, head, query, key: (weights (B,H,T,T), slot (B,H,T) or None, out before o_proj)."""
    b = x.shape[0]
    h, d = attn.n_head, attn.head_dim
    wq, wk, wv = attn.qkv_weights()
    q = (x @ wq.T).view(b, t, h, d)
    k = (x @ wk.T).view(b, t, h, d)
    v = (x @ wv.T).view(b, t, h, d)
    q, k = naive_phi(attn, name, q), naive_phi(attn, name, k)
    weights = torch.zeros(b, h, t, t, dtype=x.dtype)
    slot = torch.zeros(b, h, t, dtype=x.dtype)
    out = torch.zeros(b, t, h, d, dtype=x.dtype)
    sink = 0.0
    for bi in range(b):
        for hi in range(h):
            extra = float(attn.kernel.sink[hi].detach()) if name == "sink_logit" else sink
            for i in range(t):
                s = [float((q[bi, i, hi] * k[bi, j, hi]).sum().detach()) / math.sqrt(d) for j in range(i + 1)]
                w, m = naive_weight_row(name, s, i + 1, t, acfg, extra)
                for j in range(i + 1):
                    weights[bi, hi, i, j] = w[j]
                    out[bi, i, hi] += w[j] * v[bi, j, hi]
                if m is not None:
                    slot[bi, hi, i] = m
    has_slot = name in ("softmax_off_by_one", "sink_logit")
    return weights, (slot if has_slot else None), out.reshape(b, t, h * d)


@pytest.mark.parametrize(("name", "normalize"), CASES)
def test_kernel_matches_naive_loop(name, normalize):
    torch.manual_seed(0)
    opts = {"kernel": name, "normalize": normalize, **EXTRA_OPTIONS.get(name, {})}
    cfg = tiny_config(position="nope", n_head=2, d_model=16, attention=opts)
    attn = Attention(cfg, 0).double()
    if name == "sink_logit":
        with torch.no_grad():
            attn.kernel.sink.copy_(torch.tensor([0.7, -1.3]))
    t = 7
    x = torch.randn(2, t, 16, dtype=torch.float64)
    w_ref, slot_ref, out_ref = run_naive(attn, x, name, cfg.attention, t)
    for backend in ("reference", "blockwise", "auto"):
        attn.cfg.backend = backend
        attn.cfg.block_size = 3
        observer = WeightsObserver()
        observer.start_batch(2, t)
        ctx = AttentionContext(
            pos=torch.arange(t),
            n_sink=0,
            position=POSITIONS.get("nope")(cfg),
            mask=MASKS.get("causal")(cfg.attention),
            record=observer,
        )
        y = attn(x, ctx)
        observer.end_batch()
        torch.testing.assert_close(y, F.linear(out_ref, attn.o_proj.weight), rtol=1e-9, atol=1e-10)
        w, slot = observer.maps[0]
        torch.testing.assert_close(w, w_ref, rtol=1e-9, atol=1e-12)
        if slot_ref is None:
            assert slot is None
        else:
            torch.testing.assert_close(slot, slot_ref, rtol=1e-9, atol=1e-12)


def test_softmax_rows_sum_to_one_and_unnormalised_sigmoid_rows_do_not():
    from .helpers import tiny_model

    ids = torch.randint(0, 37, (1, 12))
    maps = attention_maps(tiny_model(), ids)
    torch.testing.assert_close(maps[0][0].sum(-1), torch.ones(1, 4, 12, dtype=torch.float64))
    maps = attention_maps(tiny_model(attention={"kernel": "sigmoid", "normalize": False}), ids)
    sums = maps[0][0].sum(-1)
    assert (sums - 1).abs().max() > 0.1
    maps = attention_maps(tiny_model(attention={"kernel": "sigmoid", "normalize": True}), ids)
    torch.testing.assert_close(maps[0][0].sum(-1), torch.ones(1, 4, 12, dtype=torch.float64))


def test_sigmoid_log_len_bias_is_minus_log_t():
    cfg = tiny_config(attention={"kernel": "sigmoid", "sigmoid_bias_log_len": True, "sigmoid_bias": 0.5})
    from sinklab.model.kernels import BlockInfo

    kern = KERNELS.get("sigmoid")(cfg.attention, 1, 4)
    s = torch.tensor([[[[0.2, -0.1]]]], dtype=torch.float64)
    w, _ = kern.weights(s, torch.ones(1, 2, dtype=torch.bool), BlockInfo(torch.tensor([2]), seq_len=10))
    expected = torch.sigmoid(s + 0.5 - math.log(10))
    torch.testing.assert_close(w, expected)


@pytest.mark.parametrize(("name", "normalize"), CASES)
def test_rows_sum_to_one_says_the_truth(name, normalize):
    """The record skips the paper's proxy only where a kernel claims its rows sum to one: the claim must
    hold (weights plus any slot), and a kernel whose rows do not sum to one must not claim it."""
    from .helpers import tiny_model

    torch.manual_seed(3)
    model = tiny_model(attention={"kernel": name, "normalize": normalize, **EXTRA_OPTIONS.get(name, {})})
    with torch.no_grad():
        for layer in model.layers:  # larger scores, so that max(|sum w|, 1) is not simply 1
            wq, wk, _ = layer.self_attn.qkv_weights()
            wq.mul_(3.0)
            wk.mul_(3.0)
    ids = torch.randint(0, 37, (2, 12))
    maps = attention_maps(model, ids)
    weights, slot = maps[0]
    total = weights.sum(-1) + (slot if slot is not None else 0.0)
    sums_to_one = bool(torch.allclose(total, torch.ones_like(total), atol=1e-6))
    kernel = model.layers[0].self_attn.kernel
    assert kernel.rows_sum_to_one == sums_to_one, (name, normalize, total.min().item(), total.max().item())
