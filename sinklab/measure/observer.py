"""What a model feeds while it runs, for the measurement to reduce (the observer protocol), and how the
measurement runs a model (the runner protocol).

sinklab's own model (`SinkLM(record=...)`) and the Hugging Face hook (`sinklab.measure.hook`) feed any object
with these methods; `AttentionRecord` (the metric and analyses), the strongest-head map pass and the
ablation counters implement it. A model depends on this protocol only, never on an observer's internals.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class AttentionObserver(Protocol):
    query_block: int  # queries per block a model's own attention hands over at once

    @property
    def batch_shape(self) -> tuple[int, int]:
        """(batch, tokens) of the batch being recorded (set by start_batch)."""
        ...

    def start_batch(self, batch_size: int, seq_len: int) -> None: ...

    def wants_layer(self, layer: int) -> bool:
        """False for layers whose weights need not be recomputed (a pass about one layer skips the rest)."""
        ...

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
        ...

    def add_qkv(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None: ...

    def add_hidden(self, index: int, hidden: torch.Tensor) -> None:
        """Hidden states (B, T, D): index 0 after the embedding, i after block i."""
        ...

    def end_batch(self) -> None: ...


@runtime_checkable
class ModelRunner(Protocol):
    """How the measurement runs a model: `hf.HFRunner` (any Hugging Face causal LM, through the registered
    attention hook or the eager fallback) and `hf.RecordRunner` (sinklab's SinkLM, through `record=`)."""

    model: nn.Module
    backend: str  # the path that fed the observer, as metrics.json reports it
    name: str

    @property
    def device(self) -> torch.device: ...

    def forward(
        self, ids: torch.Tensor, record: AttentionObserver | None, *, all_logits: bool = True
    ) -> torch.Tensor:
        """Logits of ids (B, T), feeding `record` (if given) from every attention layer; all_logits=False
        may project only the last position (a measurement needs none)."""
        ...
