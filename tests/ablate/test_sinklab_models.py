"""sinklab's own models: every SinkLM runs natively, its attention module applying the edit. Each ablation is
checked against an independent computation: the layer's own unedited weight maps edited by hand (removed
keys dropped, and the rows renormalised where the kernel normalises) and re-applied to V; a hook on the value
columns of qkv_proj; the model rebuilt with a window mask; and, for the default model, an eager forward of
its Llama export."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from sinklab.ablate.api import ablate
from sinklab.errors import SinklabError
from sinklab.model.attention import Attention, AttentionContext
from sinklab.observe import WeightsObserver

from .helpers import losses, mask_hooks, remove, write_ids

T = 16
W = 4
VARIANTS = {
    "softmax": {},
    "sigmoid": {"attention": {"kernel": "sigmoid", "normalize": False, "sigmoid_bias": -2.0}},
    "kv_bias_k": {"kv_bias": "k"},
    "sink_token_gqa": {"kv_bias": "sink_token", "n_kv_head": 1},
}


def _tiny(**options: object):
    from sinklab.model import ModelConfig, SinkLM
    from sinklab.model.config import AttentionConfig

    attention = AttentionConfig(**options.pop("attention", {}))
    cfg = ModelConfig(
        vocab_size=320, context=64, n_layer=2, n_head=2, d_model=32, d_ff=64, attention=attention, **options
    )
    torch.manual_seed(0)
    model = SinkLM(cfg).double().eval()
    # A larger score scale than the init gives, so that masking a key visibly changes the loss.
    with torch.no_grad():
        for layer in model.layers:
            layer.self_attn.qkv_weights()[0].mul_(4.0)
    return model


def _loss(model: torch.nn.Module, ids: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(ids)
    return float(F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten()))


def _hand_edited_hooks(model, keep: Callable[[int], torch.Tensor]) -> list:
    """Forward hooks replacing each attention module's output: the module's own unedited weights (and slot
    mass) with the keys `keep(t)` forbids dropped, the rows renormalised where the kernel normalises (a row
    left with no token key stays as it was), times V, through o_proj."""

    def hook(module: Attention, args, output):
        x, ctx = args
        b, t, _ = x.shape
        observer = WeightsObserver()
        observer.start_batch(b, t)
        plain = AttentionContext(
            pos=ctx.pos, n_sink=ctx.n_sink, position=ctx.position, mask=ctx.mask, record=observer
        )
        with torch.no_grad():
            plain_out = Attention.forward(module, x, plain)  # the plain module, hooks bypassed
        observer.end_batch()
        w, slot = observer.maps[0]  # (B, H, T, T) over tokens, slot (B, H, T): K/V slot + sink token
        s = ctx.n_sink
        h, d = module.n_head, module.head_dim
        v = (x @ module.qkv_weights()[2].T).view(b, t, module.n_kv_head, d).transpose(1, 2)
        v = v.repeat_interleave(h // module.n_kv_head, dim=1)
        kept = w * keep(t - s)
        left = kept.sum(-1, keepdim=True) > 0
        if module.kernel.rows_sum_to_one:
            total = kept.sum(-1, keepdim=True) + (slot.unsqueeze(-1) if slot is not None else 0.0)
            scale = torch.where(left, 1.0 / total, torch.ones_like(total))
        else:
            scale = torch.ones_like(kept[..., :1])  # no denominator: a removed key's weight just goes
        new_w = torch.where(left, kept, w) * scale
        out = new_w @ v[:, :, s:]
        if slot is not None:
            slot_v = torch.zeros(b, h, 1, d, dtype=x.dtype)
            if module.kv_bias.has_slot:
                slot_v = module.kv_bias.slot_kv()[1].view(1, h, 1, d).to(x.dtype)
            elif s:  # the sink token is the slot: its own value
                slot_v = v[:, :, :s]
            out = out + (slot * scale.squeeze(-1)).unsqueeze(-1) * slot_v
        out = module.o_proj(out.transpose(1, 2).reshape(b, t - s, h * d))
        # A prepended sink token only sees itself: its row is the plain one.
        return torch.cat([plain_out[:, :s], out], dim=1)

    return [layer.self_attn.register_forward_hook(hook) for layer in model.layers]


def _with_hooks(model, handles: list, ids: torch.Tensor) -> float:
    try:
        return _loss(model, ids)
    finally:
        remove(handles)


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_sinklm_ablations_match_independent_computations(variant: str, tmp_path: Path) -> None:
    model = _tiny(**VARIANTS[variant])
    ids = write_ids(tmp_path / "ids.jsonl", 3, T)
    res = ablate(
        model,
        f"ids:{tmp_path / 'ids.jsonl'}",
        ["mask-sink", "sink-value-zero", "window", "window+sinks"],
        length=T,
        samples=3,
        window=W,
        sink_tokens=(1,),
        eps=(0.1,),
    )
    assert res.backend == "sinklab model record"
    assert any("run natively" in n for n in res.notes)
    np.testing.assert_allclose(res.baseline.loss, _loss(model, ids), rtol=1e-7)

    def mask_first(t: int) -> torch.Tensor:
        keep = torch.ones(t, t, dtype=torch.bool)
        keep[:, 0] = False
        return keep

    def window(keep_first: int) -> Callable[[int], torch.Tensor]:
        def keep(t: int) -> torch.Tensor:
            i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
            return (i - j < W) | (j < keep_first)

        return keep

    cases = {"mask-sink": mask_first, "window": window(0), "window+sinks S=1": window(1)}
    for label, keep in cases.items():
        expected = _with_hooks(model, _hand_edited_hooks(model, keep), ids)
        np.testing.assert_allclose(res.row(label).loss, expected, rtol=1e-7, err_msg=label)
        assert abs(res.row(label).delta.mean) > 1e-4, label  # the edit did something

    # sink-value-zero: the first token's value, zeroed by a hook on the value columns of the fused q/k/v
    # projection (after a prepended sink token).
    first = int(model.sink_token is not None)
    v_start = sum(model.layers[0].self_attn.qkv_sizes[:2])

    def zero_first(module, args, output):
        output = output.clone()
        output[:, first, v_start:] = 0
        return output

    handles = [layer.self_attn.qkv_proj.register_forward_hook(zero_first) for layer in model.layers]
    np.testing.assert_allclose(res.row("sink-value-zero").loss, _with_hooks(model, handles, ids), rtol=1e-7)

    # window, no kept tokens: the same weights in a model built with the window mask.
    if model.sink_token is None:  # a sink token sits outside any window mask but is always kept by an edit
        from sinklab.model import SinkLM

        cfg_w = copy.deepcopy(model.config)
        cfg_w.attention.mask, cfg_w.attention.window = "window", W
        windowed = SinkLM(cfg_w).double().eval()
        windowed.load_state_dict(model.state_dict())
        np.testing.assert_allclose(res.row("window").loss, _loss(windowed, ids), rtol=1e-7)

    # Sink_1 after mask-sink sees the edited weights: alpha_1 = 1/T (row 1 only), below eps 0.1.
    assert res.baseline.sink_percent["0.1"][0] > 0
    assert res.row("mask-sink").sink_percent["0.1"][0] == 0.0


def test_default_sinklm_matches_its_llama_export(tmp_path: Path) -> None:
    """The default model run natively gives the numbers an eager forward of its Llama export gives."""
    from sinklab.measure.make_tiny import byte_tokenizer
    from sinklab.model import save_pretrained
    from sinklab.model.export import export_llama

    model = _tiny().float()
    run = tmp_path / "run"
    save_pretrained(model, run / "model")
    byte_tokenizer().save_pretrained(run / "tokenizer")
    ids = write_ids(tmp_path / "ids.jsonl", 3, T)
    res = ablate(
        str(run), f"ids:{tmp_path / 'ids.jsonl'}", ["mask-sink", "window"], length=T, samples=3, window=W
    )
    export_llama(model, tmp_path / "hf")
    ref = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    np.testing.assert_allclose(res.baseline.loss, float(losses(ref, ids)[0].mean()), atol=1e-5)
    keep = torch.ones(T, T, dtype=torch.bool)
    keep[1:, 0] = False
    handles = mask_hooks(ref, lambda layer, t: keep)
    masked, _ = losses(ref, ids)
    remove(handles)
    np.testing.assert_allclose(res.row("mask-sink").loss, float(masked.mean()), atol=1e-5)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    handles = mask_hooks(ref, lambda layer, t: i - j < W)
    windowed, _ = losses(ref, ids)
    remove(handles)
    np.testing.assert_allclose(res.row("window").loss, float(windowed.mean()), atol=1e-5)


def test_massive_hooks_skip_a_prepended_sink_token(tmp_path: Path) -> None:
    model = _tiny(kv_bias="sink_token")
    write_ids(tmp_path / "ids.jsonl", 2, T)
    res = ablate(
        model, f"ids:{tmp_path / 'ids.jsonl'}", ["massive-zero"], length=T, samples=2, massive_threshold=1.5
    )
    row = res.row("massive-zero")
    assert row.status == "ok"
    assert res.massive is not None and res.massive["dims"]


def test_a_demanded_linear_scan_is_a_clear_error(tmp_path: Path) -> None:
    model = _tiny(attention={"kernel": "linear_elu", "normalize": False, "backend": "linear_scan"})
    with pytest.raises(SinklabError, match="linear_scan"):
        ablate(model, "random", ["mask-sink"], length=8, samples=1)
