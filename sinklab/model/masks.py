"""Attention masks and the loss masks that go with them (paper.md §5.3): one registry entry owns both.

Coordinates are 0-based positions of real tokens; `allowed(rows, cols)` is True where query `row` may see key
`col`. Virtual slots and a prepended sink token are handled by the attention module (always visible).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from sinklab.registry import Registry

if TYPE_CHECKING:
    from sinklab.model.config import AttentionConfig


class Mask:
    options: tuple[str, ...] = ()  # AttentionConfig fields this mask needs (others must stay None)
    plain_causal = False  # exactly lower-triangular: SDPA's is_causal and prefix sums apply

    def __init__(self, cfg: AttentionConfig) -> None:
        self.cfg = cfg

    def allowed(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def key_stop(self, query_stop: int, seq_len: int) -> int:
        """An exclusive bound on the keys any query before `query_stop` may see (to skip future keys)."""
        return query_stop

    def loss_mask(self, seq_len: int) -> torch.Tensor:
        """(T,) bool over target positions: True where token t is a prediction target that counts.

        Token 0 is never a target (nothing predicts it); the loss over logits[:, :-1] vs ids[:, 1:] uses
        loss_mask(T)[1:]."""
        mask = torch.ones(seq_len, dtype=torch.bool)
        mask[0] = False
        return mask


MASKS: Registry[type[Mask]] = Registry("mask")


@MASKS.register("causal")
class Causal(Mask):
    """Query i sees keys j <= i (paper §2)."""

    plain_causal = True

    def allowed(self, rows, cols):
        return cols.view(1, -1) <= rows.view(-1, 1)


@MASKS.register("window")
class Window(Mask):
    """Sliding ("shifted") window: query i sees keys i-w+1..i, w keys including itself (flash-attn
    window_size=(w-1, 0), paper §5.3)."""

    options = ("window",)

    def allowed(self, rows, cols):
        diff = rows.view(-1, 1) - cols.view(1, -1)
        return (diff >= 0) & (diff < self.cfg.window)


@MASKS.register("prefix")
class Prefix(Mask):
    """Prefix LM: causal, and every query also sees keys 0..p-1, so the prefix is bidirectional; the loss
    drops the prefix targets (tokens 1..p-1), as `--ignore_loss p-1` in the paper's code (§5.3)."""

    options = ("prefix",)

    def allowed(self, rows, cols):
        return (cols.view(1, -1) <= rows.view(-1, 1)) | (cols.view(1, -1) < self.cfg.prefix)

    def key_stop(self, query_stop, seq_len):
        return min(max(query_stop, self.cfg.prefix), seq_len)

    def loss_mask(self, seq_len):
        mask = torch.zeros(seq_len, dtype=torch.bool)
        mask[self.cfg.prefix :] = True
        return mask
