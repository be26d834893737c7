"""What an ablation run keeps: running sums only, so memory does not grow with the number of samples.

- `SinkCounts`: an `AttentionRecord` that turns each batch's column sums into alpha_k of the first few key
  positions and adds up how many (sample, layer, head) triples pass each epsilon: the paper's Sink_k
  (sinklab.measure.metrics), without keeping per-sample alpha.
- `LossStats`: next-token loss of one forward pass per sample and per position, paired with the unablated
  pass on the same tokens, as sums and sums of squares (mean, sd and a normal interval come from them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from sinklab.measure.metrics import sink_percent, window_alpha
from sinklab.measure.record import AttentionRecord

Z95 = 1.959964  # two-sided 95 % normal quantile


@dataclass(kw_only=True)
class SinkCounts(AttentionRecord):
    """Sink_k^eps for k = 1..positions, per layer and overall, summed over batches (streaming): the record's
    column sums of each batch, turned into counts at its end instead of kept.

    `window`: also count alpha renormalised by the queries a window of that many keys lets see each key
    (metrics.window_alpha), the reading a sliding-window model needs."""

    eps: Sequence[float]
    positions: int
    window: int | None = None
    analyses: bool = False
    samples: int = 0
    # (len(eps), L, K) counts of alpha_k > eps over samples and heads; (L, H, K) sums of alpha_k
    _above: np.ndarray | None = None
    _above_window: np.ndarray | None = None
    _alpha_sum: np.ndarray | None = None
    heads: int = 0

    def end_batch(self) -> None:
        full = self.batch_alpha()[1].numpy()  # (B, L, H, T)
        alpha = full[..., : self.positions]
        b, n_layers, heads, _ = alpha.shape
        if self._above is None:
            self._above = np.zeros((len(self.eps), n_layers, self.positions))
            self._above_window = np.zeros_like(self._above)
            self._alpha_sum = np.zeros((n_layers, heads, self.positions))
            self.heads = heads
        windowed = window_alpha(full, self.window)[..., : self.positions] if self.window is not None else None
        for i, e in enumerate(self.eps):
            for layer in range(n_layers):
                # sink_percent is the one definition of Sink_k; back to counts for exact streaming sums.
                self._above[i, layer] += sink_percent(alpha[:, layer], e) / 100.0 * b * heads
                if windowed is not None:
                    self._above_window[i, layer] += sink_percent(windowed[:, layer], e) / 100.0 * b * heads
        self._alpha_sum += alpha.sum(axis=0)
        self.samples += b
        self._layers = {}

    # ---- results -----------------------------------------------------------------------------------
    def sink_percent(self, window: bool = False) -> dict[str, list[float]]:
        """{eps: [Sink_1, ..., Sink_K]} in percent over samples, layers and heads."""
        above = self._above_window if window else self._above
        assert above is not None, "no batch was recorded"
        total = self.samples * above.shape[1] * self.heads
        return {
            f"{float(e):g}": (above[i].sum(axis=0) / total * 100.0).tolist() for i, e in enumerate(self.eps)
        }

    def sink_1_by_layer(self) -> list[float]:
        """Sink_1 at the first eps for each layer (from 0), in percent."""
        assert self._above is not None
        return (self._above[0, :, 0] / (self.samples * self.heads) * 100.0).tolist()

    def mean_alpha(self) -> np.ndarray:
        """(L, H, K) alpha_k averaged over samples."""
        assert self._alpha_sum is not None
        return self._alpha_sum / self.samples


def token_losses(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(B, T-1) next-token loss in nats: entry p-1 is -log P(token p+1 | tokens 1..p), p = 1..T-1."""
    flat = logits[:, :-1].float().flatten(0, 1)
    return (
        F.cross_entropy(flat, ids[:, 1:].to(logits.device).flatten(), reduction="none")
        .view(ids.shape[0], -1)
        .cpu()
        .double()
    )


@dataclass
class Interval:
    mean: float
    low: float | None
    high: float | None
    sd: float | None
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high, "sd": self.sd, "n": self.n}


def interval(total: float, squares: float, n: int) -> Interval:
    """Mean ± 1.96 sd / sqrt(n) from a sum and a sum of squares (sd with n - 1; no interval for n = 1)."""
    mean = total / n
    if n < 2:
        return Interval(mean, None, None, None, n)
    var = max(squares - n * mean * mean, 0.0) / (n - 1)
    sd = math.sqrt(var)
    half = Z95 * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, sd, n)


@dataclass
class LossStats:
    """One forward pass's loss, paired per sample with the unablated pass on the same tokens.

    `focus`: 1-based query positions p (predicting token p+1) where this ablation bites (a window: the
    positions whose window no longer holds the first token); their mean is kept per sample as well."""

    length: int
    focus: tuple[int, int] | None = None  # [first, last] query positions, inclusive
    n: int = 0
    loss: float = 0.0
    delta: float = 0.0
    delta_sq: float = 0.0
    focus_loss: float = 0.0
    focus_base: float = 0.0
    focus_delta: float = 0.0
    focus_delta_sq: float = 0.0
    pos_loss: np.ndarray = field(init=False)
    pos_loss_sq: np.ndarray = field(init=False)
    pos_delta: np.ndarray = field(init=False)
    pos_delta_sq: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        for name in ("pos_loss", "pos_loss_sq", "pos_delta", "pos_delta_sq"):
            setattr(self, name, np.zeros(self.length - 1))

    def add(self, losses: torch.Tensor, base: torch.Tensor) -> None:
        """losses, base: (B, T-1) per-token losses of this pass and of the unablated one."""
        diff = losses - base
        per_sample = diff.mean(dim=1)
        self.n += losses.shape[0]
        self.loss += float(losses.mean(dim=1).sum())
        self.delta += float(per_sample.sum())
        self.delta_sq += float((per_sample**2).sum())
        self.pos_loss += losses.sum(dim=0).numpy()
        self.pos_loss_sq += (losses**2).sum(dim=0).numpy()
        self.pos_delta += diff.sum(dim=0).numpy()
        self.pos_delta_sq += (diff**2).sum(dim=0).numpy()
        if self.focus is not None:
            first, last = self.focus
            cut = slice(first - 1, last)
            f = diff[:, cut].mean(dim=1)
            self.focus_loss += float(losses[:, cut].mean(dim=1).sum())
            self.focus_base += float(base[:, cut].mean(dim=1).sum())
            self.focus_delta += float(f.sum())
            self.focus_delta_sq += float((f**2).sum())

    # ---- results -----------------------------------------------------------------------------------
    @property
    def mean_loss(self) -> float:
        return self.loss / self.n

    def delta_interval(self) -> Interval:
        return interval(self.delta, self.delta_sq, self.n)

    def focus_interval(self) -> Interval | None:
        if self.focus is None:
            return None
        return interval(self.focus_delta, self.focus_delta_sq, self.n)

    def loss_by_position(self) -> list[Interval]:
        return [interval(s, q, self.n) for s, q in zip(self.pos_loss, self.pos_loss_sq, strict=True)]

    def delta_by_position(self) -> list[Interval]:
        return [interval(s, q, self.n) for s, q in zip(self.pos_delta, self.pos_delta_sq, strict=True)]
