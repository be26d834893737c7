"""The ablations: one registered function each, returning how its forward passes differ from the plain one.

Attention-side ablations (mask-sink, sink-value-zero, window, window+sinks) are `AttentionEdit`s
(sinklab.model.edits) applied to the mask / values before the attention runs: by the registered attention
function for Hugging Face models (sinklab.measure.hook), by the attention module for sinklab's SinkLM.
Residual-stream ablations (massive-*) are forward hooks on one decoder block's output; swap-first changes
the input ids. Positions count from 1 (as in Sink_k), layers and heads from 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sinklab.ablate.config import (
    ABLATION_NAMES,
    HEADS_SINK,
    SWAP_RANDOM,
    AblationOptions,
)
from sinklab.measure.massive import Massive
from sinklab.model.edits import AttentionEdit
from sinklab.registry import Registry


@dataclass
class Intervention:
    """One ablated forward pass: what changes, what is reported beside the loss."""

    label: str  # row name: the ablation's name, plus its setting where one ablation makes several rows
    ablation: str
    edit: AttentionEdit | None = None
    hooks: Callable[[], list[Any]] | None = None  # installs forward hooks, returns their handles
    ids: Callable[[torch.Tensor, int], torch.Tensor] | None = None  # (batch ids, first sample index)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    focus: tuple[int, int] | None = None  # query positions (1-based, inclusive) where it bites
    window: int | None = None  # also report the window-normalised Sink_k
    skipped: str | None = None  # why it could not run on this model

    @contextmanager
    def installed(self) -> Iterator[None]:
        handles = self.hooks() if self.hooks is not None else []
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


@dataclass
class AblationContext:
    """What an ablation function may read: the model's shape, the options and the calibration batch."""

    options: AblationOptions
    length: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    draw_size: int
    samples: int
    blocks: nn.ModuleList | None
    lead: int  # positions the blocks' outputs hold before token 1 (a SinkLM's prepended sink token)
    eps: float
    alpha_first: torch.Tensor  # (L, H) alpha_1 of the unablated model on the calibration batch
    massive: Callable[[], Massive]  # found on the calibration batch, on first use

    def head_selection(self) -> tuple[torch.Tensor, str]:
        """(L, H) bool of the chosen (layer, head) pairs, and a sentence saying which they are."""
        opts = self.options
        chosen = torch.zeros(self.n_layers, self.n_heads, dtype=torch.bool)
        layers = list(opts.layers) if opts.layers is not None else list(range(self.n_layers))
        if opts.heads == HEADS_SINK:
            chosen[layers] = self.alpha_first[layers] > self.eps
            what = f"heads with α₁ > {self.eps:g} on the calibration batch"
        elif opts.heads is None:
            chosen[layers] = True
            what = "every head"
        else:
            chosen[torch.tensor(layers)[:, None], torch.tensor(list(opts.heads))[None, :]] = True
            what = f"heads {', '.join(map(str, opts.heads))}"
        where = "every layer" if opts.layers is None else f"layers {', '.join(map(str, layers))}"
        return chosen, f"{what} of {where} ({int(chosen.sum())} of {chosen.numel()} heads)"


Ablation = Callable[[AblationContext], list[Intervention]]
ABLATIONS: Registry[Ablation] = Registry("ablation")


# ---- attention edits ---------------------------------------------------------------------------------
class KeyMask(AttentionEdit):
    """No query sees the given keys in the chosen (layer, head) pairs; a normalised kernel (softmax)
    renormalises the rest, an unnormalised one (sigmoid without Z) just loses the key's weight."""

    def __init__(self, keys: Sequence[int], chosen: torch.Tensor) -> None:
        self.keys = [k - 1 for k in keys]  # 0-based columns
        self.chosen = chosen  # (L, H) bool
        self._masks: dict[tuple, torch.Tensor] = {}  # layers with the same heads share one tensor

    def key_mask(self, layer, n_heads, q_len, kv_len, device):
        heads = self.chosen[layer] if layer < len(self.chosen) else None
        if heads is None or not bool(heads.any()):
            return None
        cache_key = (tuple(heads.tolist()), q_len, kv_len, str(device))
        if cache_key not in self._masks:
            keep = torch.ones(1, 1, q_len, kv_len, dtype=torch.bool, device=device)
            keep[..., [k for k in self.keys if k < kv_len]] = False
            if not bool(heads.all()):
                # Heads left alone see every key: a per-head mask (1, H, q, kv).
                keep = keep | ~heads.to(device).view(1, -1, 1, 1)
            self._masks[cache_key] = keep
        return self._masks[cache_key]


class ValueZero(AttentionEdit):
    """The values of the given positions are zero in the chosen layers' key/value heads."""

    def __init__(self, positions: Sequence[int], kv_chosen: torch.Tensor) -> None:
        self.positions = [p - 1 for p in positions]
        self.kv_chosen = kv_chosen  # (L, Hkv) bool

    def value(self, layer, value, n_heads):
        heads = self.kv_chosen[layer] if layer < len(self.kv_chosen) else None
        if heads is None or not bool(heads.any()):
            return value
        value = value.clone()
        idx = torch.nonzero(heads.to(value.device)).flatten()
        for p in self.positions:
            value[:, idx, p] = 0
        return value


class SlidingWindow(AttentionEdit):
    """Query i sees keys i-W+1..i (W keys, itself included) plus the first `keep` tokens."""

    def __init__(self, window: int, keep: int = 0) -> None:
        self.window, self.keep = window, keep
        self._masks: dict[tuple, torch.Tensor] = {}  # one tensor for every layer

    def key_mask(self, layer, n_heads, q_len, kv_len, device):
        cache_key = (q_len, kv_len, str(device))
        if cache_key not in self._masks:
            rows = torch.arange(kv_len - q_len, kv_len, device=device)[:, None]
            cols = torch.arange(kv_len, device=device)[None, :]
            self._masks[cache_key] = ((rows - cols < self.window) | (cols < self.keep))[None, None]
        return self._masks[cache_key]


# ---- the registered ablations ------------------------------------------------------------------------
def _keys(positions: Sequence[int]) -> str:
    return ("key " if len(positions) == 1 else "keys ") + ", ".join(map(str, positions))


@ABLATIONS.register("mask-sink")
def mask_sink(ctx: AblationContext) -> list[Intervention]:
    """No query attends to key k (--positions, default 1) in the chosen layers/heads; the rest renormalise
    (an unnormalised kernel, e.g. sigmoid without Z, just loses that key's weight). Query k's own row is kept
    where it would have no key left (query 1 only sees key 1)."""
    chosen, which = ctx.head_selection()
    positions = ctx.options.positions
    note = f"{_keys(positions)} masked in {which}; a query left with no key keeps its own row"
    if 1 in positions:
        note += " (query 1 can only see key 1, so row 1 is unchanged)"
    iv = Intervention(
        "mask-sink",
        "mask-sink",
        edit=KeyMask(positions, chosen),
        params={"positions": list(positions), "heads": which},
        notes=[note],
    )
    if not bool(chosen.any()):
        iv.skipped = f"no head selected ({which})"
    return [iv]


@ABLATIONS.register("sink-value-zero")
def sink_value_zero(ctx: AblationContext) -> list[Intervention]:
    """Attention unchanged, the value vector of key k (--positions) zeroed: tests whether the sink's
    attention carries anything into the output (paper Sec. 3: small ||v_1||)."""
    chosen, which = ctx.head_selection()
    group = ctx.n_heads // ctx.n_kv_heads
    # A key/value head is shared by `group` query heads (GQA): it is zeroed when any of them is chosen.
    kv_chosen = chosen.view(ctx.n_layers, ctx.n_kv_heads, group).any(dim=-1)
    widened = int(kv_chosen.repeat_interleave(group, dim=1).sum()) - int(chosen.sum())
    positions = ctx.options.positions
    notes = [f"the value{'s' if len(positions) > 1 else ''} of {_keys(positions)} zeroed in {which}"]
    if widened:
        notes.append(
            f"GQA: {group} query heads share each value head, so {widened} more query head(s) than chosen "
            "see the zeroed value"
        )
    iv = Intervention(
        "sink-value-zero",
        "sink-value-zero",
        edit=ValueZero(positions, kv_chosen),
        params={"positions": list(positions), "heads": which, "kv_heads_zeroed": int(kv_chosen.sum())},
        notes=notes,
    )
    if not bool(chosen.any()):
        iv.skipped = f"no head selected ({which})"
    return [iv]


def _massive_hook(ctx: AblationContext, massive: Massive, mode: str) -> Callable[[], list[Any]]:
    assert ctx.blocks is not None and massive.layer is not None
    block = ctx.blocks[massive.layer]
    dims = torch.tensor(massive.dims)
    first = ctx.lead  # token 1 in the block's output

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, (tuple, list)) else output
        hidden = hidden.clone()
        d = dims.to(hidden.device)
        if mode == "zero":
            hidden[:, first, d] = 0
        else:  # the mean of the same dims over positions 2..T of the same sample
            hidden[:, first, d] = hidden[:, first + 1 :, d].mean(dim=1)
        if isinstance(output, tuple):
            return (hidden, *output[1:])
        if isinstance(output, list):
            return [hidden, *output[1:]]
        return hidden

    return lambda: [block.register_forward_hook(hook)]


def _massive(ctx: AblationContext, mode: str) -> list[Intervention]:
    name = f"massive-{mode}"
    iv = Intervention(name, name)
    if ctx.blocks is None:
        iv.skipped = "the model's decoder blocks were not found (no ModuleList of num_hidden_layers blocks)"
        return [iv]
    massive = ctx.massive()
    iv.params = {"massive": massive.to_dict()}
    if massive.layer is None:
        layer, dim, ratio = massive.largest
        if massive.chosen == "block":
            iv.skipped = (
                f"no massive dimension at --massive-layer {ctx.options.massive_layer}: no first-token dim "
                f"exceeds --massive-threshold {massive.threshold:g}x the median |h| there (the largest "
                f"anywhere: dim {dim} at block {layer}, {ratio:.1f}x)"
            )
        else:
            iv.skipped = (
                f"no massive dimension: the first token's largest |h| is {ratio:.1f}x the median (block "
                f"{layer}, dim {dim}), below --massive-threshold {massive.threshold:g}"
            )
        return [iv]
    iv.hooks = _massive_hook(ctx, massive, mode)
    what = "zero" if mode == "zero" else "their mean over positions 2..T of the same sample"
    if massive.chosen == "block":
        where = f"block {massive.layer} (from 0, --massive-layer), the dims over {massive.threshold:g}x there"
    else:
        b, d, r = massive.largest
        where = (
            f"block {massive.layer} (from 0), where dim {d} first exceeds {massive.threshold:g}x the median "
            f"|h|; it peaks at {r:.0f}x at block {b}"
        )
    iv.notes.append(f"dims {', '.join(map(str, massive.dims))} of the first token set to {what} at {where}")
    if massive.first_layer is not None and massive.first_layer != massive.layer and massive.chosen == "peak":
        iv.notes.append(
            f"block {massive.first_layer} has a smaller precursor (dims "
            f"{', '.join(map(str, massive.first_dims[:4]))}) that is not the peak's dimension: left alone"
        )
    return [iv]


@ABLATIONS.register("massive-zero")
def massive_zero(ctx: AblationContext) -> list[Intervention]:
    """The first token's massive residual dims (|h| > threshold x median) set to 0 where they appear."""
    return _massive(ctx, "zero")


@ABLATIONS.register("massive-mean")
def massive_mean(ctx: AblationContext) -> list[Intervention]:
    """The first token's massive residual dims set to their mean over positions 2..T where they appear."""
    return _massive(ctx, "mean")


def swap_ids(ctx: AblationContext) -> tuple[Callable[[torch.Tensor, int], torch.Tensor], str]:
    token = ctx.options.swap_token
    if token != SWAP_RANDOM:
        fixed = int(token)

        def fixed_first(ids: torch.Tensor, start: int) -> torch.Tensor:
            out = ids.clone()
            out[:, 0] = fixed
            return out

        return fixed_first, f"token {fixed}"
    # One draw per sample up front (S ids), so a sample gets the same token whatever the batch size.
    offsets = torch.randint(
        1, max(ctx.draw_size, 2), (ctx.samples,), generator=torch.Generator().manual_seed(ctx.options.seed)
    )

    def random_first(ids: torch.Tensor, start: int) -> torch.Tensor:
        out = ids.clone()
        # An offset in 1..draw-1 from the original id: never the token that was there.
        shift = offsets[start : start + ids.shape[0]].to(ids.device)
        out[:, 0] = (ids[:, 0] + shift) % max(ctx.draw_size, 2)
        return out

    return random_first, f"a random token per sample (seed {ctx.options.seed}), never the original one"


@ABLATIONS.register("swap-first")
def swap_first(ctx: AblationContext) -> list[Intervention]:
    """The first token replaced by another (--swap-token ID, or a random one per sample; the paper's GPT-2
    x_1 swap); Sink_1 then belongs to the new first token. Targets are tokens 2..T, as for every ablation."""
    ids, what = swap_ids(ctx)
    return [
        Intervention(
            "swap-first",
            "swap-first",
            ids=ids,
            params={"swap_token": ctx.options.swap_token, "seed": ctx.options.seed},
            notes=[f"first token replaced by {what}"],
        )
    ]


def window_size(options: AblationOptions, length: int) -> int:
    return options.window if options.window is not None else max(1, length // 4)


@ABLATIONS.register("window")
def window(ctx: AblationContext) -> list[Intervention]:
    """Sliding-window attention over W keys (--window, default T/4) in every layer, positions unchanged:
    StreamingLLM's window baseline. Its loss counts once the first token has left the window (p > W)."""
    w = window_size(ctx.options, ctx.length)
    return [
        Intervention(
            "window",
            "window",
            edit=SlidingWindow(w),
            params={"window": w},
            focus=(w + 1, ctx.length - 1),
            window=w,
            notes=[f"query p sees keys p-{w - 1}..p in every layer and head (absolute positions kept)"],
        )
    ]


@ABLATIONS.register("window+sinks")
def window_sinks(ctx: AblationContext) -> list[Intervention]:
    """The same window plus the first S tokens (--sink-tokens, default 1 and 4): StreamingLLM's fix."""
    w = window_size(ctx.options, ctx.length)
    return [
        Intervention(
            f"window+sinks S={s}",
            "window+sinks",
            edit=SlidingWindow(w, keep=s),
            params={"window": w, "sink_tokens": s},
            focus=(w + 1, ctx.length - 1),
            notes=[f"query p sees keys 1..{s} and p-{w - 1}..p in every layer and head"],
        )
        for s in ctx.options.sink_tokens
    ]


def ablation_names() -> list[str]:
    known = [n for n in ABLATION_NAMES if n in ABLATIONS]
    return known + [n for n in ABLATIONS.names() if n not in ABLATION_NAMES]


def describe(name: str) -> str:
    doc = (ABLATIONS.get(name).__doc__ or "").strip()
    return " ".join(doc.split())
