"""Normalisation layers: RMSNorm (default, eps 1e-5, paper §4.2) or LayerNorm, no bias anywhere."""

from __future__ import annotations

import torch
from torch import nn

from sinklab.registry import Registry

NORMS: Registry[type[nn.Module]] = Registry("norm")


class _RMSNormFunction(torch.autograd.Function):
    """g * x / rms(x) with a hand-written backward, in fewer passes over the activations than autograd
    through the formula: rms from one `vector_norm` reduction; x̂ = x / rms and 1 / rms saved; backward from
    gx̂ = grad * x̂, whose column sums are the weight's gradient and whose product with the weight gives
    mean(grad w x̂) (a matrix-vector product), then the input's gradient 1/rms (grad w - x̂ mean(grad w x̂))
    as one `addcmul` (about 0.5x the time of forward + backward on one CPU thread:
    benchmarks/bench_layers.py). Computed in fp32 whatever the activations' dtype."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        xf = x.float()  # fp32, as Hugging Face Llama does (bf16 activations included)
        ms = torch.linalg.vector_norm(xf, dim=-1, keepdim=True).square_().div_(x.shape[-1])
        rstd = ms.add_(eps).rsqrt_()
        xhat = xf * rstd
        ctx.save_for_backward(xhat, rstd, weight)
        ctx.x_dtype = x.dtype
        return weight * xhat.to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        xhat, rstd, weight = ctx.saved_tensors
        g, w = grad.float(), weight.float()
        gx = g * xhat
        dw = gx.reshape(-1, xhat.shape[-1]).sum(0).to(weight.dtype) if ctx.needs_input_grad[1] else None
        dx = None
        if ctx.needs_input_grad[0]:
            coef = (gx @ w).unsqueeze(-1).mul_(-1.0 / xhat.shape[-1])  # -mean(grad w x̂) per row
            dx = torch.addcmul(xhat * coef, g, w).mul_(rstd).to(ctx.x_dtype)
        return dx, dw, None


@NORMS.register("rmsnorm")
class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * g, computed in fp32 as Hugging Face Llama does."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _RMSNormFunction.apply(x, self.weight, self.eps)


@NORMS.register("layernorm")
class LayerNorm(nn.LayerNorm):
    """(x - mean) / sqrt(var + eps) * g, without a bias (LLaMA-style models have none)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__(dim, eps=eps, bias=False)
