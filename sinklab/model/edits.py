"""Explicit edits of attention (used by `sinklab ablate`): which keys a query may no longer see, and which
values are changed, per layer. Both attention paths apply the same object: Hugging Face models through the
registered attention function (sinklab.measure.hook), sinklab's SinkLM through its attention module
(sinklab.model.attention), so an ablation means the same thing on either.

Coordinates are the token sequence: key j is token j + 1 (0-based columns), layers count from 0.
"""

from __future__ import annotations

import torch


class AttentionEdit:
    """An explicit change to attention, applied to the mask and values before the model's attention runs.

    Subclasses override one or both methods; the defaults change nothing. `layer` counts attention calls
    of one forward pass from 0 (one per decoder layer)."""

    def key_mask(
        self, layer: int, n_heads: int, q_len: int, kv_len: int, device: torch.device
    ) -> torch.Tensor | None:
        """Bool, broadcastable to (B, H, q_len, kv_len): False where query i may no longer see key j; None
        leaves the layer's mask alone. It only removes keys: the model's own mask still applies. Returning
        the same tensor for several layers lets them share one edited mask."""
        return None

    def value(self, layer: int, value: torch.Tensor, n_heads: int) -> torch.Tensor:
        """The values (B, Hkv, T, D) attention mixes; return a new tensor, never edit in place."""
        return value


def keep_allowed(allowed: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """`allowed` (.., q, k) bool with the keys `keep` forbids removed. A query left with no key at all keeps
    its own row: a normalised kernel needs somewhere to put its mass (query 1 only ever sees key 1, so
    masking key 1 leaves row 1 as it was)."""
    combined = allowed & keep
    empty = ~combined.any(dim=-1, keepdim=True)
    return combined | (allowed & empty)
