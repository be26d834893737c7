"""Feed-forward blocks (paper.md §5.4 Table 11). Gated: down(act(gate x) * up x); plain: proj(act(fc x))."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sinklab.registry import Registry

MLPS: Registry[type[nn.Module]] = Registry("mlp")


class GatedMLP(nn.Module):
    act: Callable[[torch.Tensor], torch.Tensor] = staticmethod(F.silu)
    gated = True

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        # Gate and up in one matmul (rows [gate; up]); export splits it into Hugging Face Llama's
        # gate_proj / up_proj (export.py). down_proj keeps Llama's name.
        self.gate_up_proj = nn.Linear(d_model, 2 * d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(type(self).act(gate) * up)

    def output_layer(self) -> nn.Linear:
        return self.down_proj


class PlainMLP(nn.Module):
    act: Callable[[torch.Tensor], torch.Tensor] = staticmethod(F.relu)
    gated = False

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff, bias=False)
        self.proj = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(type(self).act(self.fc(x)))

    def output_layer(self) -> nn.Linear:
        return self.proj


def _exact_gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x)


class _SwiGLUFunction(torch.autograd.Function):
    """silu(gate) * up from the fused projection's output h = [gate | up]. The backward writes both halves'
    gradients straight into one buffer for h (three passes), where autograd would compute them apart and
    then concatenate them for the chunk (four)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:
        gate, up = h.chunk(2, dim=-1)
        act = F.silu(gate)
        ctx.save_for_backward(h, act)
        return act * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        h, act = ctx.saved_tensors
        gate, up = h.chunk(2, dim=-1)
        grad_h = torch.empty_like(h)
        grad_gate, grad_up = grad_h.chunk(2, dim=-1)
        torch.mul(grad, act, out=grad_up)
        torch.ops.aten.silu_backward.grad_input(grad * up, gate, grad_input=grad_gate)
        return grad_h


@MLPS.register("swiglu")
class SwiGLU(GatedMLP):
    """(Swish(h W1) * h W2) W3, the default (paper §4.2)."""

    act = staticmethod(F.silu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(_SwiGLUFunction.apply(self.gate_up_proj(x)))


@MLPS.register("geglu")
class GeGLU(GatedMLP):
    """(GeLU(h W1) * h W2) W3 (paper Table 11)."""

    act = staticmethod(_exact_gelu)


@MLPS.register("reglu")
class ReGLU(GatedMLP):
    """(ReLU(h W1) * h W2) W3 (paper Table 11)."""

    act = staticmethod(F.relu)


@MLPS.register("gelu")
class GeluMLP(PlainMLP):
    """GeLU(h W1) W2 (paper Table 11)."""

    act = staticmethod(_exact_gelu)


@MLPS.register("relu")
class ReluMLP(PlainMLP):
    """ReLU(h W1) W2 (paper Table 11)."""

    act = staticmethod(F.relu)


@MLPS.register("silu")
class SiluMLP(PlainMLP):
    """Swish(h W1) W2 (paper Table 11, "Swish")."""

    act = staticmethod(F.silu)
