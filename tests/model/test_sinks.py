"""K/V slots, sink logits, sink tokens: the paper's definitions and exact identities."""

from __future__ import annotations

import math

import pytest
import torch

from sinklab.model import SinkLM
from sinklab.model.sinks import KV_BIASES
from sinklab.observe import attention_maps

from .helpers import tiny_config, tiny_model

IDS = torch.randint(0, 37, (2, 11), generator=torch.Generator().manual_seed(1))


def copy_weights(dst: SinkLM, src: SinkLM) -> SinkLM:
    state = {k: v for k, v in src.state_dict().items() if k in dst.state_dict()}
    dst.load_state_dict(state, strict=False)
    return dst


@pytest.mark.parametrize("name", KV_BIASES.names())
@pytest.mark.parametrize("per_head", [True, False])
def test_every_kv_bias_runs_and_trains(name, per_head):
    kw = {} if name in ("none", "sink_token") else {"kv_bias_per_head": per_head}
    model = tiny_model(kv_bias=name, **kw)
    model(IDS).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_kv_slot_receives_attention_and_rows_sum_to_one_with_it():
    model = tiny_model(kv_bias="kv")
    maps = attention_maps(model, IDS)
    w, slot = maps[0]
    assert slot is not None and (slot > 0).all()
    torch.testing.assert_close(w.sum(-1) + slot, torch.ones_like(slot))


def test_value_zero_slot_contributes_nothing():
    """K biases with value 0 = softmax over [k*; K] applied to [0; V]: output = rows renormalised away."""
    model = tiny_model(kv_bias="k", n_layer=1)
    attn = model.layers[0].self_attn
    x = torch.randn(1, 6, 32, dtype=torch.float64)
    from sinklab.model.attention import AttentionContext
    from sinklab.observe import WeightsObserver

    observer = WeightsObserver()
    observer.start_batch(1, 6)
    ctx = AttentionContext(
        pos=torch.arange(6), n_sink=0, position=model.position, mask=model.mask, record=observer
    )
    y = attn(x, ctx)
    observer.end_batch()
    w, slot = observer.maps[0]
    v = (x @ attn.qkv_weights()[2].T).view(1, 6, 4, 8).transpose(1, 2)
    expected = (w @ v).transpose(1, 2).reshape(1, 6, 32) @ attn.o_proj.weight.T  # slot value adds 0
    torch.testing.assert_close(y, expected)
    assert (slot > 0).all()


def test_fixed_value_is_a_buffer_of_the_chosen_norm():
    model = tiny_model(kv_bias="k", kv_bias_value=5.0, kv_bias_value_direction="ones", n_layer=1)
    bias = model.layers[0].self_attn.kv_bias
    assert not any("v_fixed" in n for n, _ in model.named_parameters())
    torch.testing.assert_close(bias.v_fixed, torch.full((8,), 5.0 / math.sqrt(8), dtype=torch.float64))
    maps = attention_maps(model, IDS)
    assert (maps[0][1] > 0).all()


def test_key_dims_only_da_learnable():
    model = tiny_model(kv_bias="k", kv_bias_key_dims=2)
    bias = model.layers[0].self_attn.kv_bias
    assert bias.k_bias.shape == (4, 2)
    k = bias.slot_key()
    assert k.shape == (4, 8) and (k[:, 2:] == 0).all()


def test_shared_bias_is_the_same_for_every_head():
    model = tiny_model(kv_bias="kv", kv_bias_per_head=False)
    k, v = model.layers[0].self_attn.kv_bias.slot_kv()
    assert (k == k[:1]).all() and (v == v[:1]).all()


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_off_by_one_equals_zero_sink_logit_equals_zero_kv_slot(backend):
    base = tiny_model(attention={"kernel": "softmax_off_by_one", "backend": backend})
    sink = copy_weights(tiny_model(seed=5, attention={"kernel": "sink_logit", "backend": backend}), base)
    with torch.no_grad():
        for layer in sink.layers:
            layer.self_attn.kernel.sink.zero_()
    slot = copy_weights(tiny_model(seed=6, kv_bias="kv", attention={"backend": backend}), base)
    with torch.no_grad():
        for layer in slot.layers:
            layer.self_attn.kv_bias.k_bias.zero_()
            layer.self_attn.kv_bias.v_bias.zero_()
    a, b, c = base(IDS), sink(IDS), slot(IDS)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_sink_logit_to_minus_infinity_gives_softmax():
    soft = tiny_model()
    sink = copy_weights(tiny_model(seed=3, attention={"kernel": "sink_logit"}), soft)
    with torch.no_grad():
        for layer in sink.layers:
            layer.self_attn.kernel.sink.fill_(-1e4)
    torch.testing.assert_close(soft(IDS), sink(IDS))


def test_v_bias_equals_adding_the_bias_to_every_value():
    model = tiny_model(kv_bias="v", n_layer=1)
    plain = copy_weights(tiny_model(seed=9, n_layer=1), model)
    vb = model.layers[0].self_attn.kv_bias.value_bias()  # (H, D)
    with torch.no_grad():
        # softmax rows sum to 1, so sum_j w_ij (v_j + v*) = sum_j w_ij v_j + v*: fold v* into o_proj's input
        delta = (plain.layers[0].self_attn.o_proj.weight @ vb.reshape(-1)).view(1, 1, -1)
    h = plain.embed_tokens(IDS)
    attn_in = plain.layers[0].input_layernorm(h)
    from sinklab.model.attention import AttentionContext

    ctx = AttentionContext(pos=torch.arange(IDS.shape[1]), n_sink=0, position=plain.position, mask=plain.mask)
    torch.testing.assert_close(
        model.layers[0].self_attn(attn_in, ctx), plain.layers[0].self_attn(attn_in, ctx) + delta
    )


def test_sink_token_is_the_slot_and_logits_cover_real_tokens():
    model = tiny_model(kv_bias="sink_token")
    logits, maps = model(IDS), attention_maps(model, IDS)
    assert logits.shape == (2, 11, 37)
    w, slot = maps[0]
    assert w.shape == (2, 4, 11, 11)
    torch.testing.assert_close(w.sum(-1) + slot, torch.ones_like(slot))


def test_bad_kv_bias_options_say_what_is_accepted():
    with pytest.raises(ValueError, match=r"applies to: k$"):
        tiny_config(kv_bias="kv", kv_bias_value=1.0)
    with pytest.raises(ValueError, match="kv_bias_key_dims"):
        tiny_config(kv_bias="k", kv_bias_key_dims=99)
    with pytest.raises(ValueError, match="accepted: k, kv, none, sink_token, v"):
        tiny_config(kv_bias="q")
