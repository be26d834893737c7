"""Normalisation layers: RMSNorm (default, eps 1e-5, paper §4.2) or LayerNorm, no bias anywhere."""

from __future__ import annotations

import torch
from torch import nn

from sinklab.registry import Registry

NORMS: Registry[type[nn.Module]] = Registry("norm")


@NORMS.register("rmsnorm")
class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * g, computed in fp32 as Hugging Face Llama does."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


@NORMS.register("layernorm")
class LayerNorm(nn.LayerNorm):
    """(x - mean) / sqrt(var + eps) * g, without a bias (LLaMA-style models have none)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__(dim, eps=eps, bias=False)
