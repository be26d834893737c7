"""Layers with sliding or chunked attention windows, and the window-normalised Sink_k of a measurement.

In a layer whose query sees only the last w keys (a sliding window) or the keys of its own chunk of c
(chunked attention), the paper's alpha_k = (1 / (T - k + 1)) sum_i A[i, k] is at most w / (T - k + 1) by
construction: at T = 1024 and w = 512 a head that puts every visible row's whole weight on key 1 has
alpha_1 = 0.5 and never passes eps = 0.5. The window-normalised alpha divides by the queries that can see
key k instead (min(w, T - k + 1) for a sliding window; for chunks, the queries from k to the end of k's
chunk); it can reach 1. Full-attention layers keep the paper's value. metrics.json reports both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sinklab.measure.metrics import key_divisors, sink_percent, sink_percent_by_layer

SLIDING, CHUNKED, FULL = "sliding", "chunked", "full"


@dataclass(frozen=True)
class LayerWindow:
    kind: str  # SLIDING, CHUNKED or FULL
    size: int | None = None  # keys a query sees (sliding, itself included) or the chunk length

    def visible(self, seq_len: int) -> np.ndarray:
        """(T,) the number of queries that can see key k = 1..T in this layer."""
        plain = key_divisors(seq_len).numpy().astype(np.float64)
        if self.kind == SLIDING and self.size:
            return np.minimum(plain, self.size)
        if self.kind == CHUNKED and self.size:
            k = np.arange(1, seq_len + 1)
            chunk_end = np.minimum(((k - 1) // self.size + 1) * self.size, seq_len)
            return (chunk_end - k + 1).astype(np.float64)
        return plain

    def limits(self, seq_len: int) -> bool:
        """Whether this window hides some key from some query at this length."""
        return self.kind != FULL and bool(self.size) and self.size < seq_len


def _sinklab_windows(config: Any, n_layers: int) -> list[LayerWindow] | None:
    attention = getattr(config, "attention", None)
    if attention is None or not hasattr(attention, "mask"):
        return None
    if attention.mask == "window" and attention.window:
        return [LayerWindow(SLIDING, int(attention.window))] * n_layers
    return [LayerWindow(FULL)] * n_layers


def layer_windows(config: Any, n_layers: int) -> list[LayerWindow]:
    """Each layer's window from a model config: an HF config's `layer_types` (sliding_attention,
    chunked_attention, full_attention, ...) with `sliding_window` / `attention_chunk_size`, or one
    `sliding_window` for every layer (Mistral; not where `use_sliding_window` is false); a SinkLM's
    attention.mask = window. Anything else is full attention."""
    own = _sinklab_windows(config, n_layers)
    if own is not None:
        return own
    sliding = getattr(config, "sliding_window", None)
    chunk = getattr(config, "attention_chunk_size", None)
    types = getattr(config, "layer_types", None)
    if isinstance(types, (list, tuple)) and len(types) == n_layers:
        out = []
        for kind in types:
            if kind == "sliding_attention" and isinstance(sliding, int) and sliding > 0:
                out.append(LayerWindow(SLIDING, sliding))
            elif kind == "chunked_attention" and isinstance(chunk, int) and chunk > 0:
                out.append(LayerWindow(CHUNKED, chunk))
            else:
                out.append(LayerWindow(FULL))
        return out
    if isinstance(sliding, int) and sliding > 0 and getattr(config, "use_sliding_window", True) is not False:
        return [LayerWindow(SLIDING, sliding)] * n_layers
    return [LayerWindow(FULL)] * n_layers


def window_normalised(
    alpha: np.ndarray, windows: list[LayerWindow], seq_len: int | None = None
) -> np.ndarray:
    """alpha (S, L, H, K) with each layer's alpha_k divided by the queries its window lets see key k; K = T
    unless alpha holds only the first K positions of a length-`seq_len` sequence (--positions)."""
    seq_len = seq_len or alpha.shape[-1]
    n = alpha.shape[-1]
    plain = key_divisors(seq_len).numpy().astype(np.float64)
    scale = np.stack([(plain / w.visible(seq_len))[:n] for w in windows])  # (L, K)
    return alpha * scale[None, :, None, :]


def window_fields(
    alpha: np.ndarray, windows: list[LayerWindow], eps: list[float], seq_len: int | None = None
) -> dict[str, Any] | None:
    """metrics.json's `window` section (None when every layer has full attention): each layer's window, the
    layers whose window hides a key at this length, and the window-normalised Sink_k beside the paper's.
    `seq_len`: T, where alpha holds only the first positions (--positions)."""
    seq_len = seq_len or alpha.shape[-1]
    if all(w.kind == FULL for w in windows):
        return None
    normed = window_normalised(alpha, windows, seq_len)
    by_eps = {f"{float(e):g}": sink_percent(normed, e).tolist() for e in eps}
    return {
        "layers": [w.size if w.kind != FULL else None for w in windows],
        "kind": [w.kind for w in windows],
        "windowed_layers": [i for i, w in enumerate(windows) if w.limits(seq_len)],
        "sink_percent": by_eps[f"{float(eps[0]):g}"],
        "sink_percent_by_eps": by_eps,
        "sink_percent_by_layer": sink_percent_by_layer(normed, eps[0]).tolist(),
        "mean_first_alpha": float(normed[..., 0].mean()),
    }


def window_line(window: dict[str, Any], plain_sink_1: float, eps: float) -> str:
    """The summary's line: which layers are windowed, and Sink_1 window-normalised beside the plain one."""
    layers = window["windowed_layers"]
    if not layers:
        sizes = sorted({w for w in window["layers"] if w is not None})
        return (
            f"windows (w = {', '.join(map(str, sizes))}) are no shorter than T: every layer sees every key, "
            "the window-normalised Sink_k equals the paper's"
        )
    sizes = sorted({window["layers"][i] for i in layers})
    kinds = sorted({window["kind"][i] for i in layers})
    n = len(window["layers"])
    which = ", ".join(map(str, layers)) if len(layers) <= 12 else f"{len(layers)} of {n}"
    return (
        f"windowed layers (from 0): {which} ({'/'.join(kinds)}, w = {', '.join(map(str, sizes))}); "
        f"window-normalised Sink_1 = {window['sink_percent'][0]:.2f}% beside the paper's {plain_sink_1:.2f}% "
        f"at ε = {eps:g} (in those layers plain α_k ≤ w / (T - k + 1) by construction)"
    )
