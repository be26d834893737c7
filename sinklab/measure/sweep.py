"""A one-pass length sweep: α at every T' <= T from one forward at T.

For a causal model the first T' queries of a length-T forward see only the first T' keys, and their weights
are those of a length-T' forward (same positions, same mask), so alpha_k(T') = (1 / (T' - k + 1)) *
sum_{i=k..T'} A[i, k] is exact from the T-token pass: `LengthSweep` keeps, for each T', the column sums of
queries 1..T' over keys 1..T'. The paper's Fig. 3 (Sink_1 against the input length) for any model, at the
cost of one measurement at the longest T. A sink slot's mass is not swept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sinklab.measure.metrics import key_divisors, proxy_normalize, sink_percent
from sinklab.observe import QUERY_BLOCK, AttentionObserver


@dataclass
class LengthSweep(AttentionObserver):
    lengths: Sequence[int] = ()
    query_block: int = QUERY_BLOCK
    _sums: dict[int, dict[int, torch.Tensor]] = field(default_factory=dict)  # T' -> layer -> (B, H, T')
    _alpha: dict[int, list[np.ndarray]] = field(default_factory=dict)  # T' -> [(B, L, H, T')]

    def start_batch(self, batch_size: int, seq_len: int) -> None:
        super().start_batch(batch_size, seq_len)
        self._sums = {t: {} for t in self.lengths}

    def _weights(self, layer: int, w: torch.Tensor, start: int, slot: torch.Tensor | None, normalized: bool):
        rows = (
            w.float()
            if normalized
            else proxy_normalize(w.float(), slot.float() if slot is not None else None)
        )
        for t in self.lengths:
            if start >= t:
                continue
            part = rows[:, :, : t - start, :t]  # queries start..t-1, keys < t
            sums = self._sums[t].get(layer)
            if sums is None:
                sums = self._sums[t][layer] = rows.new_zeros(w.shape[0], w.shape[1], t)
            sums[..., : part.shape[-1]] += part.sum(dim=2)

    def end_batch(self) -> None:
        for t, layers in self._sums.items():
            stacked = torch.stack([layers[i].cpu() for i in sorted(layers)], dim=1) / key_divisors(t)
            self._alpha.setdefault(t, []).append(stacked.numpy())
        self._sums = {}

    def fields(self, eps: Sequence[float]) -> dict[str, Any]:
        """metrics.json's `length_sweep`: the lengths, Sink_k (k <= 4) and mean α_1 at each."""
        alpha = {t: np.concatenate(self._alpha[t]) for t in self.lengths}
        by_eps = {
            f"{float(e):g}": [sink_percent(alpha[t], e)[: min(4, t)].tolist() for t in self.lengths]
            for e in eps
        }
        return {
            "lengths": list(self.lengths),
            "sink_percent_by_eps": by_eps,  # {ε: [[Sink_1..Sink_4] at each length]}
            "sink_1": [v[0] for v in by_eps[f"{float(eps[0]):g}"]],
            "mean_first_alpha": [float(alpha[t][..., 0].mean()) for t in self.lengths],
        }


def sweep_line(sweep: dict[str, Any], eps: float) -> str:
    cells = ", ".join(f"T={t}: {v:.2f}%" for t, v in zip(sweep["lengths"], sweep["sink_1"], strict=True))
    return f"length sweep (one forward at T={sweep['lengths'][-1]}): Sink_1 at ε = {eps:g}: {cells}"
