"""What a model feeds while it runs (the observer protocol), how a measurement runs a model (the runner
protocol), and the one loop that runs a model over token ids batch by batch and feeds an observer.

This module sits below `sinklab.model` and `sinklab.measure`: sinklab's own model (`SinkLM(record=...)`)
and the Hugging Face hook (`sinklab.measure.hook`) feed any object with the observer's methods, and
`measure`, training-time evaluation, `ablate` and the length measurements all go through `observe`.
Observers: `AttentionRecord` (the metric and analyses), `HeadMapRecord` (the strongest head's map),
`SinkCounts` (ablate's counters), `WeightsObserver` (whole maps, for figures and tests) and `Observers`
(several at once, from one forward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: `sinklab measure --help` needs these names only
    import torch
    from torch import nn

    from sinklab.model.edits import AttentionEdit

# The path that fed the observer, as metrics.json reports it (`backend`).
BACKEND_REGISTRY = "registered attention function"
# Models whose attention cannot use the registered function (rejects it, fails or leaks the future on it, or
# never calls the registry: Bloom, GPT-Neo, ...): eager attention, maps from
# output_attentions (sinklab.measure.hf).
BACKEND_EAGER = "eager fallback (output_attentions)"
BACKEND_SINKLAB = "sinklab model record"
# Queries per block of recomputed weights: 128 measured 10-20 % faster than 256 at T = 1024-4096 on a CPU
# (a smaller score block, fewer keys past the causal diagonal); 64 is no faster at long T and doubles the
# Python steps and kernel launches.
QUERY_BLOCK = 128


class AttentionObserver:
    """Receives what a model computes while it runs, one batch at a time (start_batch, the forward,
    end_batch). Subclasses implement `_weights` and, where they want them, `add_qkv` / `add_hidden`; the
    model and the hook call only the methods below."""

    query_block: int = QUERY_BLOCK  # queries per block a model's own attention hands over at once
    _shape: tuple[int, int] = (0, 0)

    @property
    def batch_shape(self) -> tuple[int, int]:
        """(batch, tokens) of the batch being recorded (set by start_batch)."""
        return self._shape

    def start_batch(self, batch_size: int, seq_len: int) -> None:
        self._shape = (batch_size, seq_len)

    def wants_layer(self, layer: int) -> bool:
        """False for layers whose weights need not be recomputed (a pass about one layer skips the rest)."""
        return True

    def add_weights(
        self,
        layer: int,
        weights: torch.Tensor,
        query_start: int = 0,
        *,
        slot: torch.Tensor | None = None,
        normalized: bool = True,
    ) -> None:
        """Weights (B, H, q, <= T) of queries query_start.. of `layer` (keys a causal block cannot see may
        be left out); `slot`: (B, H, q) mass of a sink slot or sink logit; `normalized`: rows sum to one."""
        self._weights(layer, weights, query_start, slot, normalized)

    def _weights(self, layer: int, w: torch.Tensor, start: int, slot: torch.Tensor | None, normalized: bool):
        raise NotImplementedError

    def add_qkv(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor | None) -> None:
        """Queries, keys (after positions) and values (B, H, T, D) of `layer`."""

    def add_hidden(self, index: int, hidden: torch.Tensor) -> None:
        """Hidden states (B, T, D): index 0 after the embedding, i after block i."""

    def end_batch(self) -> None:
        """The batch is complete."""


class ModelRunner:
    """How a measurement runs a model: `sinklab.model.runner.SinkLMRunner` (sinklab's SinkLM, through
    `record=` and `edit=`) and `sinklab.measure.hf.HFRunner` (any Hugging Face causal LM, through the
    registered attention hook or the eager fallback). Subclasses set the attributes and implement `_run`."""

    model: nn.Module
    backend: str  # the path that fed the observer, as metrics.json reports it
    name: str
    query_block: int
    lead: int = 0  # positions the blocks' outputs hold before token 1 (a SinkLM's prepended sink token)
    # --positions K: a runner that can (the HF registered-function path) feeds only what α_1..α_K need, from
    # the fused attention kernel's log-sum-exp; `fast_fallbacks` counts its calls that could not, by reason
    positions: int | None = None
    fast_fallbacks: dict[str, int] | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def can_edit(self) -> bool:
        """Whether `forward` can apply an AttentionEdit (mask / value ablations)."""
        return True

    @property
    def blocks(self) -> nn.ModuleList | None:
        """The decoder blocks (for hooks on their outputs), or None where they cannot be found."""
        return None

    def forward(
        self,
        ids: torch.Tensor,
        observer: AttentionObserver | None,
        edit: AttentionEdit | None = None,
        *,
        all_logits: bool = True,
    ) -> torch.Tensor:
        """Logits of ids (B, T), without gradients, feeding `observer` (if given) from every attention layer
        and applying `edit` (if given); all_logits=False may project only the last position (a measurement
        needs none)."""
        import torch

        with torch.no_grad():
            return self._run(ids.to(self.device), observer, edit, all_logits)

    def _run(self, ids, observer, edit, all_logits):  # the logits, as forward says; ids on self.device
        raise NotImplementedError


def observe(
    runner: ModelRunner,
    ids: torch.Tensor,
    observer: AttentionObserver,
    batch_size: int,
    edit: AttentionEdit | None = None,
    *,
    progress: bool = False,
    desc: str = "measure",
    logits: Callable[[int, torch.Tensor], None] | None = None,
) -> AttentionObserver:
    """Run `runner` over ids (S, T) batch by batch, feeding `observer` (and applying `edit`): only one
    batch's activations exist at a time. `logits(start, logits)`, if given, receives every batch's logits
    (all positions); otherwise the runner may project only the last one."""
    from tqdm.auto import tqdm

    starts = range(0, ids.shape[0], batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False):
        batch = ids[start : start + batch_size]
        observer.start_batch(batch.shape[0], batch.shape[1])
        out = runner.forward(batch, observer, edit, all_logits=logits is not None)
        observer.end_batch()
        if logits is not None:
            logits(start, out)
    return observer


@dataclass
class Observers(AttentionObserver):
    """Feeds several observers from one forward pass: the first one's query blocks, the union of their
    layers (each observer receives only the layers it wants)."""

    members: tuple[AttentionObserver, ...]

    @property
    def query_block(self) -> int:
        return self.members[0].query_block

    @property
    def batch_shape(self) -> tuple[int, int]:
        return self.members[0].batch_shape

    def start_batch(self, batch_size: int, seq_len: int) -> None:
        for observer in self.members:
            observer.start_batch(batch_size, seq_len)

    def wants_layer(self, layer: int) -> bool:
        return any(observer.wants_layer(layer) for observer in self.members)

    def _weights(self, layer: int, w: torch.Tensor, start: int, slot: torch.Tensor | None, normalized: bool):
        for observer in self.members:
            if observer.wants_layer(layer):
                observer.add_weights(layer, w, start, slot=slot, normalized=normalized)

    def add_qkv(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor | None) -> None:
        for observer in self.members:
            observer.add_qkv(layer, q, k, v)

    def add_hidden(self, index: int, hidden: torch.Tensor) -> None:
        for observer in self.members:
            observer.add_hidden(index, hidden)

    def end_batch(self) -> None:
        for observer in self.members:
            observer.end_batch()


@dataclass
class WeightsObserver(AttentionObserver):
    """Keeps every layer's whole weight map of one batch: `maps[layer]` = (weights (B, H, T, T) over the
    token keys, slot mass (B, H, T) or None). For figures and tests on short sequences only: the measuring
    observers reduce the weights as they come instead."""

    query_block: int = 1 << 30  # the whole sequence in one block
    maps: list[tuple[torch.Tensor, torch.Tensor | None]] = field(default_factory=list)
    _parts: dict[int, list[tuple[torch.Tensor, torch.Tensor | None]]] = field(default_factory=dict)

    def start_batch(self, batch_size: int, seq_len: int) -> None:
        super().start_batch(batch_size, seq_len)
        self._parts, self.maps = {}, []

    def _weights(self, layer: int, w: torch.Tensor, start: int, slot: torch.Tensor | None, normalized: bool):
        self._parts.setdefault(layer, []).append((w, slot))

    def end_batch(self) -> None:
        import torch

        for layer in sorted(self._parts):
            parts = self._parts[layer]
            slots = [s for _, s in parts]
            slot = torch.cat(slots, dim=2) if slots[0] is not None else None
            self.maps.append((torch.cat([w for w, _ in parts], dim=2), slot))


def attention_maps(
    model: nn.Module, ids: torch.Tensor, edit: AttentionEdit | None = None
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Each layer's (weights (B, H, T, T), slot mass (B, H, T) or None) of a SinkLM on ids (B, T)."""
    import torch

    observer = WeightsObserver()
    observer.start_batch(*ids.shape)
    with torch.no_grad():
        model(ids, record=observer, edit=edit)
    observer.end_batch()
    return observer.maps
