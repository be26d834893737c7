"""Fast paths vs the reference path (forward and backward), and the record fed by the attention module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sinklab.measure.record import AttentionRecord
from sinklab.model.edits import AttentionEdit
from sinklab.model.kernels import KERNELS
from sinklab.observe import attention_maps

from .helpers import tiny_model

IDS = torch.randint(0, 37, (2, 13), generator=torch.Generator().manual_seed(2))

VARIANTS = [{"attention": {"kernel": k}} for k in KERNELS.names()] + [
    {"attention": {"mask": "window", "window": 4}},
    {"attention": {"mask": "prefix", "prefix": 3}},
    {"position": "alibi"},
    {"position": "relative", "attention": {"mask": "prefix", "prefix": 3}},
    {"kv_bias": "kv"},
    {"kv_bias": "k", "attention": {"kernel": "sink_logit", "mask": "window", "window": 3}},
    {"kv_bias": "kv", "attention": {"kernel": "linear_identity"}},
    {"kv_bias": "sink_token", "attention": {"mask": "window", "window": 3}},
    {"n_kv_head": 2, "attention": {"gate": True}},
    {"attention": {"heads": "addition", "kernel": "sigmoid"}},
    {"norm_position": "post", "norm": "layernorm", "mlp": "geglu"},
]


def ident(v: dict) -> str:
    return ",".join(f"{k}={v[k]}" for k in sorted(v))


def run(model, backend: str):
    for layer in model.layers:
        layer.self_attn.cfg.backend = backend
        layer.self_attn.cfg.block_size = 4
    model.zero_grad()
    logits = model(IDS)
    (logits * torch.linspace(-1, 1, logits.shape[-1], dtype=logits.dtype)).sum().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("variant", VARIANTS, ids=ident)
def test_fast_paths_match_reference_forward_and_backward(variant):
    model = tiny_model(**variant)
    ref_logits, ref_grads = run(model, "reference")
    backends = ["auto", "blockwise"]
    for backend in backends:
        logits, grads = run(model, backend)
        torch.testing.assert_close(logits, ref_logits, rtol=1e-9, atol=1e-10)
        for name, g in grads.items():
            torch.testing.assert_close(g, ref_grads[name], rtol=1e-7, atol=1e-9, msg=f"{backend} {name}")


def test_auto_chooses_sdpa_scan_blockwise():
    from sinklab.model.attention import AttentionContext

    def chosen(**kw):
        m = tiny_model(**kw)
        ctx = AttentionContext(pos=torch.arange(3), n_sink=0, position=m.position, mask=m.mask)
        return m.layers[0].self_attn.choose_backend(ctx)

    assert chosen() == "sdpa"
    assert chosen(attention={"kernel": "sink_logit", "mask": "window", "window": 2}) == "sdpa"
    assert chosen(attention={"kernel": "linear_elu", "normalize": False}) == "linear_scan"
    assert chosen(attention={"kernel": "linear_elu", "normalize": False}, position="alibi") == "blockwise"
    assert chosen(attention={"kernel": "sigmoid"}) == "blockwise"
    with pytest.raises(ValueError, match="SDPA kernels"):
        tiny_model(attention={"kernel": "sigmoid", "backend": "sdpa"})
    with pytest.raises(ValueError, match="linear_scan"):
        tiny_model(attention={"kernel": "linear_elu", "backend": "linear_scan"})  # normalised by default


def naive_alpha(weights: torch.Tensor) -> np.ndarray:
    """alpha_k = mean over queries i >= k of A[i, k], written as a loop (paper.md §2.1)."""
    b, h, t, _ = weights.shape
    out = np.zeros((b, h, t))
    for k in range(t):
        out[:, :, k] = weights[:, :, k:, k].sum(-1).numpy() / (t - k)
    return out


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"attention": {"kernel": "sigmoid"}},
        {"kv_bias": "k"},
        {"kv_bias": "sink_token"},
        {"attention": {"kernel": "sink_logit"}},
        {"norm_position": "post"},
    ],
    ids=ident,
)
def test_record_matches_naive_alpha_and_leaves_logits_unchanged(variant):
    model = tiny_model(**variant)
    with torch.no_grad():
        plain = model(IDS)
        maps = attention_maps(model, IDS)
        rec = AttentionRecord(query_block=4)
        rec.start_batch(*IDS.shape)
        recorded = model(IDS, record=rec)
        rec.end_batch()
    assert torch.equal(plain, recorded)
    res = rec.result()
    for layer, (w, slot) in enumerate(maps):
        if model.layers[layer].self_attn.kernel.rows_sum_to_one:
            np.testing.assert_allclose(res.alpha[:, layer], naive_alpha(w), rtol=1e-6, atol=1e-9)
        else:
            np.testing.assert_allclose(res.alpha_raw[:, layer], naive_alpha(w), rtol=1e-6, atol=1e-9)
            norm = w.abs() / (w.abs().sum(-1, keepdim=True) + 1e-8)
            np.testing.assert_allclose(res.alpha[:, layer], naive_alpha(norm), rtol=1e-5, atol=1e-8)
        if slot is not None:
            t = IDS.shape[1]
            expected = (1 + slot.sum(-1).numpy()) / (t + 1)
            np.testing.assert_allclose(res.slot_alpha[:, layer], expected, rtol=1e-6)
    assert res.hidden_norm.shape == (model.config.n_layer + 1, IDS.shape[1])
    assert res.key_norm.shape == (model.config.n_layer, IDS.shape[1])


def test_record_needs_a_started_batch():
    rec = AttentionRecord()
    with pytest.raises(RuntimeError, match="start_batch"):
        tiny_model()(IDS, record=rec)


# ---- attention edits (sinklab ablate) -------------------------------------------------------------------
class DropKeys(AttentionEdit):
    """Removes the keys `keep(t)` (T, T) forbids, in the heads `heads` (None: every head)."""

    def __init__(self, keep, heads: list[int] | None = None) -> None:
        self.keep, self.heads = keep, heads

    def key_mask(self, layer, n_heads, q_len, kv_len, device):
        keep = self.keep(q_len).view(1, 1, q_len, kv_len)
        if self.heads is not None:
            chosen = torch.zeros(n_heads, dtype=torch.bool)
            chosen[self.heads] = True
            keep = keep | ~chosen.view(1, -1, 1, 1)
        return keep


class ZeroFirstValue(AttentionEdit):
    def value(self, layer, value, n_heads):
        value = value.clone()
        value[:, :, 0] = 0
        return value


def drop_first(t: int) -> torch.Tensor:
    keep = torch.ones(t, t, dtype=torch.bool)
    keep[:, 0] = False
    return keep


def window_and_first(t: int) -> torch.Tensor:
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    return (i - j < 3) | (j == 0)


EDITS = {
    "mask-first-head-0": lambda: DropKeys(drop_first, heads=[0]),
    "window+first": lambda: DropKeys(window_and_first),
    "zero-first-value": ZeroFirstValue,
}


@pytest.mark.parametrize("variant", VARIANTS, ids=ident)
def test_no_edit_is_the_plain_forward(variant):
    model = tiny_model(**variant)
    with torch.no_grad():
        assert torch.equal(model(IDS), model(IDS, edit=AttentionEdit()))


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("variant", VARIANTS, ids=ident)
def test_edits_agree_on_every_path_forward_and_backward(variant, edit):
    model = tiny_model(**variant)

    def run_edited(backend: str):
        for layer in model.layers:
            layer.self_attn.cfg.backend = backend
            layer.self_attn.cfg.block_size = 4
        model.zero_grad()
        logits = model(IDS, edit=EDITS[edit]())
        (logits * torch.linspace(-1, 1, logits.shape[-1], dtype=logits.dtype)).sum().backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    ref_logits, ref_grads = run_edited("reference")
    if not (edit == "window+first" and model.config.attention.mask == "window"):  # else already windowed
        with torch.no_grad():
            assert not torch.allclose(ref_logits, model(IDS))  # the edit changes something
    for backend in ("auto", "blockwise"):
        logits, grads = run_edited(backend)
        torch.testing.assert_close(logits, ref_logits, rtol=1e-9, atol=1e-10)
        for name, g in grads.items():
            torch.testing.assert_close(g, ref_grads[name], rtol=1e-7, atol=1e-9, msg=f"{backend} {name}")


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"attention": {"kernel": "sigmoid", "normalize": False}},
        {"attention": {"kernel": "sigmoid", "normalize": True}},
        {"kv_bias": "k"},
        {"kv_bias": "sink_token"},
        {"attention": {"kernel": "sink_logit"}},
        {"attention": {"kernel": "linear_elu", "normalize": False}},
    ],
    ids=ident,
)
@pytest.mark.parametrize("keep", [drop_first, window_and_first], ids=["mask-first", "window+first"])
def test_edited_weights_are_the_plain_weights_edited_by_hand(variant, keep):
    """Layer 0 (same input either way): removed keys get weight 0; the rest are renormalised with any slot
    where the kernel normalises (softmax family, Z = sum), and left as they were where it does not; the
    record is fed the same edited weights."""
    model = tiny_model(**variant)
    kernel = model.layers[0].self_attn.kernel
    t = IDS.shape[1]
    with torch.no_grad():
        plain = attention_maps(model, IDS)
        edited = attention_maps(model, IDS, DropKeys(keep))
        rec = AttentionRecord(query_block=4)
        rec.start_batch(*IDS.shape)
        model(IDS, record=rec, edit=DropKeys(keep))
        rec.end_batch()
    w, slot = plain[0]
    k = keep(t).to(w.dtype)
    k[0, 0] = 1.0  # query 1 would have no key left: it keeps its row
    kept = w * k
    expected_slot = slot
    if model.config.attention.kernel == "sigmoid" and kernel.normalize:
        # Z = sum + 1e-8 over what is left; 1e-8 / Z_plain = 1 - the sum of a plain row.
        kept = kept / (kept.sum(-1, keepdim=True) + 1.0 - w.sum(-1, keepdim=True))
    elif kernel.normalize:  # the softmax family: exp(s_j) / (sum over what is left, slot included)
        total = kept.sum(-1) + (slot if slot is not None else 0.0)
        kept = kept / total.unsqueeze(-1)
        expected_slot = slot / total if slot is not None else None
    got_w, got_slot = edited[0]
    torch.testing.assert_close(got_w, kept, rtol=1e-9, atol=1e-12)
    if expected_slot is not None:
        torch.testing.assert_close(got_slot, expected_slot, rtol=1e-9, atol=1e-12)
    col = rec.result().alpha_raw if not kernel.rows_sum_to_one else rec.result().alpha
    np.testing.assert_allclose(col[:, 0], naive_alpha(got_w), rtol=1e-6, atol=1e-9)


def test_key_edits_leave_linear_scan_explicitly():
    from sinklab.model.attention import AttentionContext

    m = tiny_model(attention={"kernel": "linear_elu", "normalize": False})
    attn = m.layers[0].self_attn
    ctx = AttentionContext(pos=torch.arange(3), n_sink=0, position=m.position, mask=m.mask)
    assert attn.choose_backend(ctx) == "linear_scan"
    assert attn.choose_backend(ctx, keys_edited=True) == "blockwise"
    attn.cfg.backend = "linear_scan"
    with pytest.raises(ValueError, match="cannot remove keys"):
        attn.choose_backend(ctx, keys_edited=True)
    with torch.no_grad():
        torch.testing.assert_close(m(IDS, edit=ZeroFirstValue()), m(IDS, edit=ZeroFirstValue()))
