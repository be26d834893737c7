"""The default SinkLM equals Hugging Face LlamaForCausalLM; export loads in transformers; init is recorded."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sinklab.model import SinkLM
from sinklab.model.export import export_llama, llama_state_dict
from sinklab.model.mlp import MLPS
from sinklab.model.norms import NORMS

from .helpers import tiny_config

IDS = torch.randint(0, 37, (2, 17), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("n_kv_head", [None, 2])
def test_default_model_equals_hf_llama_with_copied_weights(n_kv_head):
    torch.manual_seed(0)
    cfg = tiny_config(n_kv_head=n_kv_head)
    model = SinkLM(cfg).eval()
    hf_cfg = LlamaConfig(
        vocab_size=37,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=n_kv_head or 4,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
    )
    hf = LlamaForCausalLM(hf_cfg).eval()
    hf.load_state_dict(llama_state_dict(model), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model(IDS), hf(IDS).logits, rtol=0, atol=1e-5)


def test_exported_folder_loads_in_transformers_with_the_same_logits(tmp_path):
    torch.manual_seed(1)
    model = SinkLM(tiny_config(n_kv_head=2)).eval()
    export_llama(model, tmp_path / "hf")
    hf = LlamaForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        torch.testing.assert_close(model(IDS), hf(IDS).logits, rtol=0, atol=1e-5)


def test_export_refuses_non_default_options(tmp_path):
    model = SinkLM(tiny_config(attention={"kernel": "sigmoid"}))
    with pytest.raises(ValueError, match="default options"):
        export_llama(model, tmp_path / "hf")


def test_neox_small_init():
    torch.manual_seed(0)
    cfg = tiny_config(d_model=64, n_head=4, d_ff=256, n_layer=3, vocab_size=2000)
    model = SinkLM(cfg)
    std = math.sqrt(2 / (5 * 64))
    assert model.embed_tokens.weight.std().item() == pytest.approx(std, rel=0.05)
    assert model.layers[0].mlp.gate_up_proj.weight.std().item() == pytest.approx(std, rel=0.05)
    assert model.layers[0].mlp.down_proj.weight.std().item() == pytest.approx(1 / 8 / 3, rel=0.05)
    assert (model.layers[0].input_layernorm.weight == 1).all()
    assert cfg.init == "neox_small"


@pytest.mark.parametrize("mlp", MLPS.names())
@pytest.mark.parametrize("norm", NORMS.names())
def test_every_mlp_and_norm_matches_its_formula(mlp, norm):
    torch.manual_seed(0)
    block = MLPS.get(mlp)(8, 12)
    x = torch.randn(3, 8)
    acts = {
        "swiglu": torch.nn.functional.silu,
        "silu": torch.nn.functional.silu,
        "geglu": torch.nn.functional.gelu,
        "gelu": torch.nn.functional.gelu,
        "reglu": torch.relu,
        "relu": torch.relu,
    }
    act = acts[mlp]
    if hasattr(block, "gate_up_proj"):
        w_gate, w_up = block.gate_up_proj.weight.chunk(2)
        expected = (act(x @ w_gate.T) * (x @ w_up.T)) @ block.down_proj.weight.T
    else:
        expected = act(x @ block.fc.weight.T) @ block.proj.weight.T
    torch.testing.assert_close(block(x), expected)
    layer = NORMS.get(norm)(8)
    if norm == "rmsnorm":
        ref = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5)
    else:
        ref = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(layer(x), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rmsnorm_gradients_equal_autograd_through_the_formula(dtype):
    """RMSNorm's hand-written backward against autograd through the plain fp32 formula."""
    torch.manual_seed(0)
    layer = NORMS.get("rmsnorm")(16)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
    x = (torch.randn(3, 5, 16) * 3).to(dtype).requires_grad_()
    w = layer.weight.detach().clone().requires_grad_()
    xf = x.float()
    ref = w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5)).to(dtype)
    out = layer(x)
    assert out.dtype == ref.dtype
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    gx, gw = torch.autograd.grad(out, (x, layer.weight), g)
    rx, rw = torch.autograd.grad(ref, (x, w), g)
    if dtype == torch.float32:
        torch.testing.assert_close(gx, rx)
        torch.testing.assert_close(gw, rw)
        return
    # bf16: autograd rounds the formula's intermediate gradient to bf16, the backward keeps fp32; both are
    # compared with the fp64 gradient, and the backward must be at least as close as the formula.
    xd = x.detach().double().requires_grad_()
    wd = w.detach().double().requires_grad_()
    exact = wd * (xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + 1e-5))
    tx, tw = torch.autograd.grad(exact, (xd, wd), g.double())
    assert (gx.double() - tx).abs().max() <= (rx.double() - tx).abs().max()
    assert (gw.double() - tw).abs().max() <= (rw.double() - tw).abs().max() + 1e-6


def test_post_ln_has_no_final_norm_and_follows_the_papers_order():
    torch.manual_seed(0)
    model = SinkLM(tiny_config(norm_position="post", n_layer=1)).double()
    assert model.norm is None
    block = model.layers[0]
    ids = IDS[:1]
    from sinklab.model.attention import AttentionContext

    x = model.embed_tokens(ids)
    ctx = AttentionContext(pos=torch.arange(ids.shape[1]), n_sink=0, position=model.position, mask=model.mask)
    h = block.input_layernorm(x + block.self_attn(x, ctx))  # layer 1 attention sees the raw embedding
    h = block.post_attention_layernorm(h + block.mlp(h))
    torch.testing.assert_close(model(ids), model.lm_head(h))


@pytest.mark.parametrize("kv_bias", ["none", "sink_token"])
def test_logits_to_keep_projects_only_the_last_positions(kv_bias):
    torch.manual_seed(0)
    model = SinkLM(tiny_config(kv_bias=kv_bias)).eval()
    with torch.no_grad():
        full = model(IDS)
        last = model(IDS, logits_to_keep=3)
    assert full.shape[:2] == IDS.shape and last.shape == (2, 3, full.shape[-1])
    torch.testing.assert_close(last, full[:, -3:], atol=1e-6, rtol=0)


def test_swiglu_backward_equals_autograd_through_the_formula():
    """SwiGLU's hand-written backward (both halves written into one buffer) against autograd."""
    torch.manual_seed(0)
    block = MLPS.get("swiglu")(8, 12)
    x = torch.randn(3, 5, 8, requires_grad=True)
    w_gate, w_up = block.gate_up_proj.weight.chunk(2)
    ref = (torch.nn.functional.silu(x @ w_gate.T) * (x @ w_up.T)) @ block.down_proj.weight.T
    out = block(x)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    params = (x, block.gate_up_proj.weight, block.down_proj.weight)
    for got, expected in zip(
        torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g), strict=True
    ):
        torch.testing.assert_close(got, expected)


def test_bf16_autocast_trains_as_on_a_gpu():
    """The CUDA path's dtypes on the CPU: under bf16 autocast the fused projections, RoPE, RMSNorm and SwiGLU
    functions run forward and backward, and the loss and gradients stay close to fp32's."""
    torch.manual_seed(0)
    model = SinkLM(tiny_config(n_kv_head=2))
    ids = torch.randint(0, 37, (2, 17))

    def loss_and_grads(autocast: bool):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(ids)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    loss32, grads32 = loss_and_grads(False)
    loss16, grads16 = loss_and_grads(True)
    torch.testing.assert_close(loss16, loss32, rtol=2e-2, atol=2e-2)
    for g16, g32 in zip(grads16, grads32, strict=True):
        assert g16.dtype == torch.float32 and torch.isfinite(g16).all()
        assert (g16 - g32).norm() <= 0.1 * g32.norm() + 1e-6
