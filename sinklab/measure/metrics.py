"""The paper's attention-sink metric (Gu et al. 2025, Sec. 3.2), defined once for every caller.

For layer l, head h and 1-based key position k of a length-T sequence,
    alpha_k = (1 / (T - k + 1)) * sum_{i=k..T} A[i, k]
is the mean attention that the queries able to see key k pay to it, and
    Sink_k^eps = 100 * share of (sample, layer, head) triples with alpha_k > eps   (strict ">").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sinklab.measure.checks import DEFAULT_EPS

# The paper's proxy for kernels whose rows do not sum to one: |w| / (sum |w| + 1e-8) (paper.md Sec. 2.4).
PROXY_EPS = 1e-8


def key_divisors(seq_len: int, device: torch.device | None = None) -> torch.Tensor:
    """T - k + 1 for 1-based k = 1..T, i.e. the number of queries that can see each key."""
    return torch.arange(seq_len, 0, -1, device=device, dtype=torch.float32)


def window_alpha(alpha: np.ndarray, window: int) -> np.ndarray:
    """alpha (..., T) re-normalised by the queries that can see each key under a window of `window` keys
    (itself included): min(w, T - k + 1) instead of T - k + 1. Plain alpha_k of a window model is at most
    w / (T - k + 1) by construction; this one can reach 1 (the paper's Fig. 6 reading)."""
    seq_len = alpha.shape[-1]
    divisors = key_divisors(seq_len).numpy()
    return alpha * (divisors / np.minimum(divisors, window))


def importance_scores(weights: torch.Tensor) -> torch.Tensor:
    """alpha over the last axis from full (..., T, T) attention maps [query, key] (reference path).

    Entries above the diagonal are ignored, as the metric only counts queries at or after the key.
    """
    seq_len = weights.shape[-1]
    lower = torch.tril(weights.float())
    return lower.sum(dim=-2) / key_divisors(seq_len, weights.device)


def proxy_denominator(weights: torch.Tensor, extra_mass: torch.Tensor | None = None) -> torch.Tensor:
    """sum_j |w_j| (+ |extra_mass|) + 1e-8 per row (...,): what the proxy divides each |w| and the slot by."""
    total = weights.abs().sum(dim=-1)
    if extra_mass is not None:
        total = total + extra_mass.abs()
    return total + PROXY_EPS


def proxy_normalize(weights: torch.Tensor, extra_mass: torch.Tensor | None = None) -> torch.Tensor:
    """Rows rescaled to |w| / (sum_j |w| + 1e-8); `extra_mass` (a sink slot's weight) joins the sum (its own
    share is |extra_mass| / proxy_denominator)."""
    return weights.abs() / proxy_denominator(weights, extra_mass).unsqueeze(-1)


def sink_percent(alpha: torch.Tensor | np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Sink_k^eps in percent for every position k from alpha of shape (..., T): share of leading triples."""
    a = torch.as_tensor(np.asarray(alpha)) if isinstance(alpha, np.ndarray) else alpha
    a = a.reshape(-1, a.shape[-1])
    return ((a > eps).double().mean(dim=0) * 100.0).cpu().numpy()


def sink_percent_by_layer(alpha_slhk: torch.Tensor | np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """(L, T) per-layer Sink_k: share over samples and heads of that layer."""
    a = torch.as_tensor(np.asarray(alpha_slhk))
    return ((a > eps).double().mean(dim=(0, 2)) * 100.0).numpy()


def summarize_alpha(alpha_slhk: np.ndarray, eps_list: Sequence[float] = (DEFAULT_EPS,)) -> dict[str, object]:
    """The metrics.json fields that come from per-sample alpha of shape (samples, layers, heads, T)."""
    if alpha_slhk.ndim != 4:
        raise ValueError(f"alpha must have shape (samples, layers, heads, T), got {alpha_slhk.shape}")
    eps0 = float(eps_list[0])
    by_eps = {_eps_key(e): sink_percent(alpha_slhk, e).tolist() for e in eps_list}
    return {
        "epsilon": eps0,
        "sink_percent": by_eps[_eps_key(eps0)],
        "sink_percent_by_eps": by_eps,
        "alpha": alpha_slhk.mean(axis=0).tolist(),
        "sink_percent_by_layer": sink_percent_by_layer(alpha_slhk, eps0).tolist(),
        "mean_first_alpha": float(alpha_slhk[..., 0].mean()),
    }


def _eps_key(eps: float) -> str:
    return f"{float(eps):g}"
