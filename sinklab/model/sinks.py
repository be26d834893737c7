"""Key/value biases and sink slots (paper.md §5.4 "Attention biases", Tables 4, 5, 12 right, 13).

A K slot is a virtual position 0 prepended *after* RoPE (its key is never rotated) that every query sees:
softmax(q [k*; K]^T / sqrt(d_h) + M) [v*; V]. Parameters live per block, shared across heads or per head,
initialised N(0, 0.02^2) as in the paper's code. A learnable sink token (Xiao et al. 2024) is instead a
learned embedding prepended to every sequence; the model handles it, this entry only names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from sinklab.registry import Registry

if TYPE_CHECKING:
    from sinklab.model.config import ModelConfig

BIAS_INIT_STD = 0.02


class KVBias(nn.Module):
    has_slot = False  # adds a virtual key/value slot
    has_value_bias = False  # adds v* to every head's output
    sink_token = False  # the model prepends a learnable token
    options: tuple[str, ...] = ()  # ModelConfig kv_bias_* fields this entry reads

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.head_dim = cfg.head_dim
        self.per_head = cfg.kv_bias_per_head

    def _param(self, dims: int) -> nn.Parameter:
        rows = self.n_head if self.per_head else 1
        return nn.Parameter(torch.randn(rows, dims) * BIAS_INIT_STD)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(1 or H, D) -> (H, D): a head-shared bias is repeated over heads."""
        return x.expand(self.n_head, -1)

    def slot_kv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Key and value of the slot, each (H, D)."""
        raise NotImplementedError

    def value_bias(self) -> torch.Tensor:
        """(H, D) added to each head's output."""
        raise NotImplementedError


KV_BIASES: Registry[type[KVBias]] = Registry("kv_bias")


@KV_BIASES.register("none")
class NoBias(KVBias):
    """Plain attention, no slot (the paper's default)."""


class _KeySlot(KVBias):
    has_slot = True
    options = ("kv_bias_per_head", "kv_bias_key_dims")

    def __init__(self, cfg):
        super().__init__(cfg)
        # Only d_a dims of k* are learnable, the rest stay 0 (paper Table 13).
        self.key_dims = cfg.kv_bias_key_dims or cfg.head_dim
        self.k_bias = self._param(self.key_dims)

    def slot_key(self) -> torch.Tensor:
        k = self._heads(self.k_bias)
        if self.key_dims < self.head_dim:
            k = torch.cat([k, k.new_zeros(self.n_head, self.head_dim - self.key_dims)], dim=-1)
        return k


@KV_BIASES.register("k")
class KeyBias(_KeySlot):
    """K biases: softmax(q [k*; K]^T + M) [0; V], or [v*; V] with a fixed v* = m v' (paper Tables 4, 5)."""

    options = (*_KeySlot.options, "kv_bias_value", "kv_bias_value_direction")

    def __init__(self, cfg):
        super().__init__(cfg)
        m = cfg.kv_bias_value or 0.0
        if cfg.kv_bias_value_direction == "e1":  # v' = [1, 0, ..., 0]
            direction = torch.zeros(cfg.head_dim)
            direction[0] = 1.0
        else:  # "ones": v'' = [1, ..., 1] / sqrt(d_h)
            direction = torch.full((cfg.head_dim,), cfg.head_dim**-0.5)
        # A buffer, not a parameter: the fixed value is never trained.
        self.register_buffer("v_fixed", m * direction, persistent=True)

    def slot_kv(self):
        k = self.slot_key()
        return k, self.v_fixed.to(k.dtype).expand(self.n_head, -1)


@KV_BIASES.register("kv")
class KeyValueBias(_KeySlot):
    """KV biases: softmax(q [k*; K]^T / sqrt(d_h) + M) [v*; V] with learnable k*, v* (paper Table 4)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.v_bias = self._param(cfg.head_dim)

    def slot_kv(self):
        return self.slot_key(), self._heads(self.v_bias)


@KV_BIASES.register("v")
class ValueBias(KVBias):
    """V biases: softmax(q K^T / sqrt(d_h) + M) V + v*, v* added to each head's output (paper Table 4)."""

    has_value_bias = True
    options = ("kv_bias_per_head",)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.v_bias = self._param(cfg.head_dim)

    def value_bias(self):
        return self._heads(self.v_bias)


@KV_BIASES.register("sink_token")
class SinkToken(KVBias):
    """A learnable token x_s prepended to every sequence, its k/v made by the network (Xiao et al. 2024)."""

    sink_token = True
