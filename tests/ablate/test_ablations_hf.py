"""Each ablation equals an independent computation: a plain eager forward of the same Hugging Face model,
edited by module hooks (mask pre-hooks, a value-projection hook, a block-output hook) or by other ids, on
five architectures (GQA: llama, qwen2; sliding windows: mistral on every layer, gemma2 on every other layer
with logit softcapping; gpt2: learned positions, fused q/k/v)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from sinklab.ablate.api import ablate
from sinklab.measure.make_tiny import tiny_config
from sinklab.measure.metrics import importance_scores, sink_percent

from .helpers import block_output_hook, blocks, losses, mask_hooks, remove, value_hooks, write_ids

T = 20
SAMPLES = 4
EPS = (0.1, 0.2)
W, SINKS = 6, (1, 3)
SWAP = 5
ARCHITECTURES = ["llama", "qwen2", "mistral", "gemma2", "gpt2"]


def _save(model_type: str, folder: Path) -> Path:
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(tiny_config(model_type), attn_implementation="eager").save_pretrained(
        folder
    )
    return folder


def _sinks(maps: list[torch.Tensor]) -> dict[str, list[float]]:
    alpha = importance_scores(torch.stack(maps, dim=1)).numpy()  # (S, L, H, T)
    return {f"{e:g}": sink_percent(alpha, e)[:4].tolist() for e in EPS}


def _check(row, base: torch.Tensor, ref: torch.Tensor, maps: list[torch.Tensor] | None) -> None:
    assert row.status == "ok", row.skipped
    np.testing.assert_allclose(row.loss, float(ref.mean()), atol=1e-4)
    if row.delta is not None:  # the unablated row has none
        assert (ref - base).abs().max() > 1e-5, "the reference edit changed nothing: a vacuous comparison"
        np.testing.assert_allclose(row.delta.mean, float((ref - base).mean(dim=1).mean()), atol=1e-5)
    np.testing.assert_allclose(row.loss_by_position, ref.mean(dim=0).numpy(), atol=1e-4)
    if maps is not None:
        expected = _sinks(maps)
        for e in expected:
            np.testing.assert_allclose(row.sink_percent[e][:4], expected[e], atol=1e-9)


def _column_keep(key: int) -> torch.Tensor:
    """Every query loses key `key` (1-based), except query `key` itself when it has no other key."""
    keep = torch.ones(T, T, dtype=torch.bool)
    keep[:, key - 1] = False
    if key == 1:
        keep[0, 0] = True  # query 1 only sees key 1: its row stays
    return keep


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_every_ablation_equals_an_independent_forward(model_type: str, tmp_path: Path) -> None:
    folder = _save(model_type, tmp_path / model_type)
    ids = write_ids(tmp_path / "ids.jsonl", SAMPLES, T)
    result = ablate(
        str(folder),
        f"ids:{tmp_path / 'ids.jsonl'}",
        length=T,
        samples=SAMPLES,
        batch_size=3,  # two batches of unequal size: the sums stream
        eps=EPS,
        window=W,
        sink_tokens=SINKS,
        swap_token=SWAP,
        massive_threshold=2.0,  # random weights have no massive activation: a low bar finds some dims
        device="cpu",
    )
    ref = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    base, base_maps = losses(ref, ids)
    _check(result.baseline, base, base, base_maps)

    handles = mask_hooks(ref, lambda layer, t: _column_keep(1))
    masked, maps = losses(ref, ids)
    remove(handles)
    _check(result.row("mask-sink"), base, masked, maps)
    assert result.row("mask-sink").sink_percent["0.1"][0] == 0.0  # alpha_1 = 1/T everywhere

    head_dim = (
        getattr(ref.config, "head_dim", None) or ref.config.hidden_size // ref.config.num_attention_heads
    )
    handles = value_hooks(ref, 1, None, head_dim)
    zeroed, maps = losses(ref, ids)
    remove(handles)
    _check(result.row("sink-value-zero"), base, zeroed, maps)

    massive = result.massive
    assert massive is not None and massive["layer"] is not None and massive["dims"]
    # Found on the first batch: mean |h_1[d]| / median of mean |h| at positions 2..T, per block; the dims
    # over 2x where that ratio peaks, edited at the first block where the peak dim is over 2x.
    ratios: list[torch.Tensor] = []

    def keep(m, a, out):
        table = (out[0] if isinstance(out, tuple) else out).abs().mean(0)
        ratios.append(table[0] / table[1:].median())

    handles = [b.register_forward_hook(keep) for b in blocks(ref)]
    with torch.no_grad():
        ref(ids[:3], use_cache=False)
    remove(handles)
    peak = max(range(len(ratios)), key=lambda i: float(ratios[i].max()))
    dim = int(ratios[peak].argmax())
    layer = next(i for i, r in enumerate(ratios) if r[dim] > 2.0)
    dims = [d for d in torch.nonzero(ratios[peak] > 2.0).flatten().tolist() if ratios[layer][d] > 2.0]
    assert massive["largest"] == {"layer": peak, "dim": dim, "ratio": pytest.approx(float(ratios[peak][dim]))}
    assert massive["layer"] == layer and sorted(massive["dims"]) == sorted(dims)
    for mode in ("zero", "mean"):
        handles = block_output_hook(ref, massive["layer"], massive["dims"], mode)
        edited, maps = losses(ref, ids)
        remove(handles)
        _check(result.row(f"massive-{mode}"), base, edited, maps)

    swapped_ids = ids.clone()
    swapped_ids[:, 0] = SWAP
    swapped, maps = losses(ref, swapped_ids)
    # The loss of the swapped input is scored on the original targets (token 1 is never a target).
    _check(result.row("swap-first"), base, swapped, maps)

    rows = torch.arange(T)[:, None]
    cols = torch.arange(T)[None, :]
    for label, keep_first in [("window", 0), *[(f"window+sinks S={s}", s) for s in SINKS]]:
        keep = (rows - cols < W) | (cols < keep_first)
        handles = mask_hooks(ref, lambda layer, t, keep=keep: keep)
        windowed, maps = losses(ref, ids)
        remove(handles)
        row = result.row(label)
        _check(row, base, windowed, maps)
        # The focus is the positions whose window has lost the first token: p > W (query p, from 1).
        assert row.focus["positions"] == [W + 1, T - 1]
        np.testing.assert_allclose(
            row.focus["delta"]["mean"], float((windowed - base)[:, W:].mean(dim=1).mean()), atol=1e-5
        )
    assert result.streaming_llm is not None and "verdict" in result.streaming_llm


def test_chosen_layers_and_heads_and_sink_heads(tmp_path: Path) -> None:
    """mask-sink / sink-value-zero in one layer's chosen heads of a GQA Llama (4 query heads, 2 KV heads),
    and the 'sink' head choice (alpha_1 > eps on the first batch)."""
    folder = _save("llama", tmp_path / "llama")
    ids = write_ids(tmp_path / "ids.jsonl", SAMPLES, T)
    spec = f"ids:{tmp_path / 'ids.jsonl'}"
    ref = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    base, base_maps = losses(ref, ids)
    head_dim = ref.config.hidden_size // ref.config.num_attention_heads

    res = ablate(
        str(folder),
        spec,
        ["mask-sink", "sink-value-zero"],
        length=T,
        samples=SAMPLES,
        positions=(2,),
        layers=(1,),
        heads=(0, 3),
        eps=EPS,
        device="cpu",
    )
    keep = _column_keep(2).expand(4, T, T).clone()
    keep[[1, 2]] = True  # heads 1 and 2 are left alone
    handles = mask_hooks(ref, lambda layer, t: keep if layer == 1 else None)
    masked, maps = losses(ref, ids)
    remove(handles)
    _check(res.row("mask-sink"), base, masked, maps)

    # Heads 0 and 3 use KV heads 0 and 1: both are zeroed, in layer 1 only; the note says it widened.
    row = res.row("sink-value-zero")
    assert any("GQA" in n for n in row.notes)
    handles = value_hooks(ref, 2, [0, 1], head_dim)
    handles[0].remove()  # layer 0 untouched
    zeroed, maps = losses(ref, ids)
    remove(handles[1:])
    _check(row, base, zeroed, maps)

    first = importance_scores(torch.stack(base_maps, dim=1)[:2])[..., 0].mean(0)  # (L, H), first batch
    eps = float(first.flatten().sort().values[3:5].mean())  # half the heads above it
    res = ablate(
        str(folder), spec, ["mask-sink"], length=T, samples=SAMPLES, heads="sink", eps=(eps,), batch_size=2
    )
    chosen = first > eps
    assert int(chosen.sum()) == 4
    assert "4 of 8 heads" in res.row("mask-sink").params["heads"]

    def keep_sink_heads(layer: int, t: int) -> torch.Tensor:
        out = _column_keep(1).expand(4, T, T).clone()
        out[~chosen[layer]] = True
        return out

    handles = mask_hooks(ref, keep_sink_heads)
    masked, _ = losses(ref, ids)
    remove(handles)
    np.testing.assert_allclose(res.row("mask-sink").loss, float(masked.mean()), atol=1e-4)


def test_random_swap_draws_another_token_per_sample(tmp_path: Path) -> None:
    folder = _save("llama", tmp_path / "llama")
    ids = write_ids(tmp_path / "ids.jsonl", 6, T)
    spec = f"ids:{tmp_path / 'ids.jsonl'}"
    one = ablate(str(folder), spec, ["swap-first"], length=T, samples=6, batch_size=4, seed=3)
    two = ablate(str(folder), spec, ["swap-first"], length=T, samples=6, batch_size=1, seed=3)
    # The same draws whatever the batch size; a different seed draws other tokens.
    assert one.row("swap-first").loss == pytest.approx(two.row("swap-first").loss, abs=1e-6)
    other = ablate(str(folder), spec, ["swap-first"], length=T, samples=6, seed=4)
    assert other.row("swap-first").loss != pytest.approx(one.row("swap-first").loss, abs=1e-6)

    from sinklab.ablate.ablations import AblationOptions, swap_ids

    class Ctx:
        options = AblationOptions(seed=3)
        draw_size = 300
        samples = 6

    swap, _ = swap_ids(Ctx())  # type: ignore[arg-type]
    out = torch.cat([swap(ids[:4], 0), swap(ids[4:], 4)])
    assert (out[:, 0] != ids[:, 0]).all() and (out[:, 1:] == ids[:, 1:]).all()
    assert ((out[:, 0] >= 0) & (out[:, 0] < 300)).all()
