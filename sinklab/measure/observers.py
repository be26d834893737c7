"""The strongest-head map observer `sinklab measure` feeds in its own pass (beside the AttentionRecord)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from sinklab.measure.metrics import proxy_normalize
from sinklab.observe import QUERY_BLOCK, AttentionObserver

MAP_SAMPLES = 4  # samples behind the strongest head's mean map (the first ones)
# Positions the strongest head's map shows (queries and keys 1..64): a figure a few hundred pixels wide
# cannot show more single keys, and the sink column of key 1 must stay visible.
MAP_POSITIONS = 64


@dataclass
class HeadMapRecord(AttentionObserver):
    """An AttentionObserver that keeps the mean map of every (layer, head) over the first `samples` samples
    and the first `positions` positions (queries and keys 1..P, P = min(T, positions)): the strongest-head
    figure's data, fed in the measurement's own pass, so that figure needs no second forward.

    The P x P block is the top-left corner of the full (T, T) mean map, exact (causal queries 1..P see no
    key past P). Memory: layers x heads x P x P float64 (3 MB for 12 x 8 heads at P = 64)."""

    samples: int = MAP_SAMPLES
    positions: int = MAP_POSITIONS
    query_block: int = QUERY_BLOCK
    totals: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (H, P, P) sums over samples
    count: int = 0  # samples recorded
    take: int = 0  # samples of the current batch that are recorded (the first ones)

    def wants_layer(self, layer: int) -> bool:
        return self.take > 0

    def start_batch(self, batch_size: int, seq_len: int) -> None:
        super().start_batch(batch_size, seq_len)
        self.take = max(0, min(batch_size, self.samples - self.count))

    def _weights(
        self, layer: int, weights: torch.Tensor, query_start: int, slot: torch.Tensor | None, normalized: bool
    ):
        p = min(self.positions, self.batch_shape[1])
        stop = min(query_start + weights.shape[2], p)
        if self.take <= 0 or query_start >= p:
            return
        # A causal block may hand over only the keys it can see (shape[-1] <= T); the rest stay zero.
        rows = weights[: self.take, :, : stop - query_start].float()
        if not normalized:  # the proxy needs whole rows, so the keys are cut to p after it
            part = slot[: self.take, :, : stop - query_start].float() if slot is not None else None
            rows = proxy_normalize(rows, part)
        w = rows[..., :p]
        total = self.totals.get(layer)
        if total is None:
            total = self.totals[layer] = torch.zeros(w.shape[1], p, p, dtype=torch.float64)
        total[:, query_start:stop, : w.shape[-1]] += w.sum(0).double().cpu()

    def end_batch(self) -> None:
        self.count += self.take
        self.take = 0

    def mean_map(self, layer: int, head: int) -> np.ndarray:
        """(P, P) mean map of one head; zero above the diagonal."""
        if layer not in self.totals or not self.count:
            raise RuntimeError(f"no attention map of layer {layer} was recorded")
        return (self.totals[layer][head] / self.count).numpy()
