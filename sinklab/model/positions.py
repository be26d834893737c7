"""Positional encodings (paper.md §5.4 Table 3). One module per model, shared by all layers.

A position entry may add a vector to the token embedding (`embed`), rotate queries and keys (`rotate`), and/or
add a per-head bias to the attention scores (`bias`). Positions are 0-based token indices; a prepended sink
token takes position 0. Virtual K/V slots have no position: they are never rotated and get no score bias.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from sinklab.registry import Registry

if TYPE_CHECKING:
    from sinklab.model.config import ModelConfig


class Position(nn.Module):
    has_bias = False  # adds a score bias (ALiBi, relative)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.head_dim = cfg.head_dim
        self.d_model = cfg.d_model

    def embed(self, pos: torch.Tensor) -> torch.Tensor | None:
        return None

    def rotate(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return x

    def bias(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor | None:
        return None

    def rotate_qkv(
        self, qkv: torch.Tensor, pos: torch.Tensor, n_q: int, n_kv: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q and k rotated, and v, from the fused projection's heads qkv (B, n_q + 2 n_kv, T, D)."""
        qk, v = qkv.split((n_q + n_kv, n_kv), dim=1)
        q, k = self.rotate(qk, pos).split((n_q, n_kv), dim=1)
        return q, k, v


POSITIONS: Registry[type[Position]] = Registry("position")


@POSITIONS.register("rope")
class Rope(Position):
    """RoPE, NeoX half rotation over the full head dim, base `rope_base` (default 10000; paper §4.2)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        inv_freq = 1.0 / (
            cfg.rope_base ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)
        )
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        # cos / sin tables for positions 0..context-1, computed once (fp32, as Hugging Face Llama does);
        # rotate_half's sign is folded into the sin table: rotate_half(x) sin = roll(x, D/2) sin_signed.
        cos, sin_signed = self.tables(torch.arange(cfg.context))
        self.register_buffer("cos_table", cos, persistent=False)
        self.register_buffer("sin_table", sin_signed, persistent=False)

    def tables(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin with its first half negated), each (len(pos), head_dim) in fp32."""
        freqs = pos.to(torch.float32).view(-1, 1) * self.inv_freq.to(pos.device).view(1, -1)
        emb = torch.cat((freqs, freqs), dim=-1)
        sin = emb.sin()
        half = self.head_dim // 2
        return emb.cos(), torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)

    def _lookup(self, pos: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        # The model's positions are 0..T-1: up to the context the tables are looked up (no device sync to
        # check them), beyond it computed.
        if pos.shape[0] <= self.cos_table.shape[0]:
            cos, sin = self.cos_table[pos], self.sin_table[pos]
        else:
            cos, sin = self.tables(pos)
        return cos.to(dtype), sin.to(dtype)

    def rotate(self, x, pos):
        return _RopeFunction.apply(x, *self._lookup(pos, x.dtype))

    def rotate_qkv(self, qkv, pos, n_q, n_kv):
        # One function for the split and the rotation: its backward writes dq, dk (rotated back) and dv
        # straight into one gradient buffer for qkv, where autograd would concatenate them twice.
        return _RopeQKVFunction.apply(qkv, *self._lookup(pos, qkv.dtype), n_q, n_kv)


class _RopeFunction(torch.autograd.Function):
    """x cos + rotate_half(x) sin, as addcmul(x cos, roll(x, D/2), sin_signed), and its transpose as one
    addcmul too: roll(sin_signed, D/2) = -sin_signed (its halves are -s and s), so the input's gradient is
    g cos - roll(g, D/2) sin_signed. Three passes each way instead of autograd's four and five (about 0.65x
    the time of forward + backward on one CPU thread: benchmarks/bench_layers.py)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin_signed)
        return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), sin_signed)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        cos, sin_signed = ctx.saved_tensors
        rolled = grad.roll(grad.shape[-1] // 2, dims=-1)
        return torch.addcmul(grad * cos, rolled, sin_signed, value=-1), None, None


class _RopeQKVFunction(torch.autograd.Function):
    """(q, k, v) from qkv (B, n_q + 2 n_kv, T, D), q and k rotated as _RopeFunction does, v a view of qkv."""

    @staticmethod
    def forward(ctx, qkv, cos, sin_signed, n_q: int, n_kv: int):
        ctx.save_for_backward(cos, sin_signed)
        ctx.sizes = (n_q, n_kv)
        qk, v = qkv.split((n_q + n_kv, n_kv), dim=1)
        rotated = torch.addcmul(qk * cos, qk.roll(qk.shape[-1] // 2, dims=-1), sin_signed)
        q, k = rotated.split((n_q, n_kv), dim=1)
        return q, k, v

    @staticmethod
    def backward(ctx, grad_q, grad_k, grad_v):
        cos, sin_signed = ctx.saved_tensors
        n_q, n_kv = ctx.sizes
        ref = next(g for g in (grad_q, grad_k, grad_v) if g is not None)
        b, _, t, d = ref.shape
        # (B, T, H', D) memory transposed to (B, H', T, D): the layout of the projection's output view,
        # so that its view/transpose backward needs no copy.
        grad = torch.empty(b, t, n_q + 2 * n_kv, d, dtype=ref.dtype, device=ref.device).transpose(1, 2)
        parts = grad.split((n_q, n_kv, n_kv), dim=1)
        for g, out in zip((grad_q, grad_k), parts[:2], strict=True):
            if g is None:
                out.zero_()
            else:
                torch.addcmul(g * cos, g.roll(d // 2, dims=-1), sin_signed, value=-1, out=out)
        if grad_v is None:
            parts[2].zero_()
        else:
            parts[2].copy_(grad_v)
        return grad, None, None, None, None


@POSITIONS.register("nope")
class NoPE(Position):
    """No positional signal at all (paper Table 3)."""


@POSITIONS.register("sinusoidal")
class Sinusoidal(Position):
    """Absolute [sin(t w_i)..., cos(t w_i)...] (all sines, then all cosines), w_i = 10000^(-2i/d), added to
    the token embedding (paper's code `absolute`)."""

    def embed(self, pos):
        half = self.d_model // 2
        omega = 10000.0 ** (-2.0 * torch.arange(half, dtype=torch.float32, device=pos.device) / self.d_model)
        angles = pos.to(torch.float32).view(-1, 1) * omega.view(1, -1)
        return torch.cat((angles.sin(), angles.cos()), dim=-1)


@POSITIONS.register("learned")
class Learned(Position):
    """Learned absolute table nn.Embedding(context, d) added to the token embedding (paper's `learnable`)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.table = nn.Embedding(cfg.context, cfg.d_model)

    def embed(self, pos):
        if int(pos.max()) >= self.table.num_embeddings:
            raise ValueError(
                f"learned positions cover {self.table.num_embeddings} tokens (model.context); "
                f"got position {int(pos.max())}"
            )
        return self.table(pos)


def t5_bucket(distance: torch.Tensor, num_buckets: int = 32, max_distance: int = 128) -> torch.Tensor:
    """T5's causal bucket of n = max(i - j, 0): n if n < 16, else 16 + floor(ln(n/16)/ln(128/16)*16) <= 31."""
    n = distance.clamp_min(0)
    exact = num_buckets // 2
    large = (
        exact
        + (
            torch.log(n.float().clamp_min(1) / exact) / math.log(max_distance / exact) * (num_buckets - exact)
        ).long()
    )
    large = large.clamp_max(num_buckets - 1)
    return torch.where(n < exact, n, large)


@POSITIONS.register("relative")
class Relative(Position):
    """T5 relative bias: a learned scalar per head looked up by bucket(i - j) (32 buckets, max distance 128),
    added to the scores (Raffel et al. 2020; the paper's Table 3 row, built as real T5)."""

    has_bias = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.table = nn.Embedding(32, cfg.n_head)

    def bias(self, q_pos, k_pos):
        bucket = t5_bucket(q_pos.view(-1, 1) - k_pos.view(1, -1))
        return self.table(bucket).permute(2, 0, 1)  # (H, q, k)


@POSITIONS.register("relative_bucket")
class RelativeBucket(Position):
    """The paper's code (`GPTrelpos`): the bucket index itself (0..31, no table, same for every head) is
    added to the scores, a positive bias growing with distance (where the paper's code and its Sec. 5.4 text
    differ, the code is followed)."""

    has_bias = True

    def bias(self, q_pos, k_pos):
        bucket = t5_bucket(q_pos.view(-1, 1) - k_pos.view(1, -1)).float()
        return bucket.unsqueeze(0).expand(self.n_head, -1, -1)


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Press et al. (2022) slopes: geometric from 2^(-8/n) for a power of two n, else interleaved."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_head).is_integer():
        return torch.tensor(power_of_two(n_head))
    closest = 2 ** math.floor(math.log2(n_head))
    extra = power_of_two(2 * closest)[0::2][: n_head - closest]
    return torch.tensor(power_of_two(closest) + extra)


@POSITIONS.register("alibi")
class Alibi(Position):
    """ALiBi: slope_h * (j - i) <= 0 added to the scores (Press et al. 2022); -slope_h |i - j| for keys after
    the query (only a prefix mask shows those)."""

    has_bias = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.register_buffer("slopes", alibi_slopes(cfg.n_head), persistent=False)

    def bias(self, q_pos, k_pos):
        dist = (q_pos.view(-1, 1) - k_pos.view(1, -1)).abs().float()
        return -self.slopes.to(dist.device).view(-1, 1, 1) * dist
