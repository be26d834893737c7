"""Attention kernels: scores -> weights for one block of queries (paper.md §5.4 "Attention operation").

Every kernel is a small `nn.Module` registered in `KERNELS`. The attention-weights engine
(sinklab.model.attention_weights.block_weights) computes a block of scores (B, H, q, S) and hands it, with a
boolean `allowed` mask (q, S), to the kernel's `weights`, which returns weights that are exactly 0 where a key
is not allowed (the paper's code applies its causal mask multiplicatively, after the nonlinearity), plus, for
kernels with an extra logit in the denominator, the mass that logit takes (the "slot" the record reports).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from sinklab.model.attention_weights import BlockInfo, masked_softmax
from sinklab.registry import Registry

if TYPE_CHECKING:
    from sinklab.model.config import AttentionConfig

# Denominator guard of the paper's code for sim kernels and the elu feature map.
NORM_EPS = 1e-8
SOFTPICK_EPS = 1e-6


class Kernel(nn.Module):
    """Base class. Subclasses set the class attributes below and override `weights` (and maybe `features`)."""

    normalize_options: tuple[bool, ...] = (True,)  # accepted values of attention.normalize
    normalize_default: bool = True
    options: tuple[str, ...] = ()  # AttentionConfig fields this kernel reads (others must stay default)
    sdpa: bool = False  # computable by F.scaled_dot_product_attention (possibly with an extra logit slot)
    has_extra_logit: bool = False  # a logit in the denominator that belongs to no key (sink logit)

    def __init__(self, cfg: AttentionConfig, n_head: int, head_dim: int) -> None:
        super().__init__()
        self.normalize = cfg.normalize if cfg.normalize is not None else self.normalize_default
        self.scale = head_dim**-0.5
        self.n_head = n_head

    @property
    def rows_sum_to_one(self) -> bool:
        """True when every row of weights (with any slot) sums to 1; the record then needs no proxy."""
        return self.normalize

    @property
    def linear_scan(self) -> bool:
        """True when w_ij = phi(q_i).phi(k_j) * scale exactly, so causal prefix sums compute the output."""
        return False

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi applied to queries and keys after positions (identity except for linear kernels)."""
        return x

    def extra_logit(self) -> torch.Tensor | None:
        """(H,) logit of the extra denominator term, for kernels with `has_extra_logit`."""
        return None

    def sdpa_out_scale(self) -> float:
        return 1.0

    def weights(
        self, scores: torch.Tensor, allowed: torch.Tensor, info: BlockInfo
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError


KERNELS: Registry[type[Kernel]] = Registry("kernel")


def _sum_normalize(w: torch.Tensor) -> torch.Tensor:
    return w / (w.sum(dim=-1, keepdim=True) + NORM_EPS)


def _abs_max1_normalize(w: torch.Tensor) -> torch.Tensor:
    return w / w.sum(dim=-1, keepdim=True).abs().clamp_min(1.0)


@KERNELS.register("softmax")
class Softmax(Kernel):
    """softmax(q k^T / sqrt(d_h) + M): the default (paper §2)."""

    sdpa = True

    def weights(self, scores, allowed, info):
        return masked_softmax(scores, allowed)


@KERNELS.register("sigmoid")
class Sigmoid(Kernel):
    """sigmoid(q k^T / sqrt(d_h) + b), Z = 1 or sum (paper Table 6; b = -log T as Ramapuram et al. 2024)."""

    normalize_options = (False, True)
    normalize_default = False
    options = ("sigmoid_bias", "sigmoid_bias_log_len")

    def __init__(self, cfg, n_head, head_dim):
        super().__init__(cfg, n_head, head_dim)
        self.bias = cfg.sigmoid_bias
        self.bias_log_len = cfg.sigmoid_bias_log_len

    def weights(self, scores, allowed, info):
        b = self.bias - (math.log(info.seq_len) if self.bias_log_len else 0.0)
        w = torch.sigmoid(scores + b if b else scores) * allowed
        return (_sum_normalize(w) if self.normalize else w), None


@KERNELS.register("elu")
class Elu(Kernel):
    """elu(q k^T / sqrt(d_h)) + 1, Z = 1 or sum (paper Table 6, code `sim='elu'`)."""

    normalize_options = (False, True)
    normalize_default = False

    def weights(self, scores, allowed, info):
        w = (F.elu(scores) + 1.0) * allowed
        return (_sum_normalize(w) if self.normalize else w), None


class _LinearKernel(Kernel):
    """phi(q) phi(k)^T / sqrt(d_h), phi applied after RoPE (paper Table 6, code `model_attn_kernel.py`)."""

    normalize_options = (False, True)
    normalize_default = False

    @property
    def linear_scan(self) -> bool:
        return not self.normalize

    @property
    def rows_sum_to_one(self) -> bool:
        # Z = max(|sum w|, 1) leaves rows summing to anything in [-1, 1] (and weights may be negative), so
        # the metric uses the paper's proxy |w| / sum |w| for these kernels, normalised or not.
        return False

    def normalize_rows(self, w: torch.Tensor) -> torch.Tensor:
        return _abs_max1_normalize(w)

    def weights(self, scores, allowed, info):
        w = scores * allowed
        return (self.normalize_rows(w) if self.normalize else w), None


@KERNELS.register("linear_elu")
class LinearElu(_LinearKernel):
    """phi(x) = elu(x) + 1; Z = sum w + 1e-8 when normalised (paper Table 6, kernel `elu`)."""

    normalize_default = True

    @property
    def rows_sum_to_one(self) -> bool:
        return self.normalize  # positive features divided by their sum

    def features(self, x):
        return F.elu(x) + 1.0

    def normalize_rows(self, w):
        return _sum_normalize(w)


@KERNELS.register("linear_identity")
class LinearIdentity(_LinearKernel):
    """phi(x) = x; Z = max(|sum w|, 1) when normalised (paper Table 6, kernel `linear`)."""


@KERNELS.register("linear_mlp")
class LinearMlp(_LinearKernel):
    """phi(x) = W2 relu(W1 x), W1, W2 in R^{d_h x d_h}, no bias, shared by heads, q and k (paper Table 6)."""

    def __init__(self, cfg, n_head, head_dim):
        super().__init__(cfg, n_head, head_dim)
        self.fc1 = nn.Linear(head_dim, head_dim, bias=False)
        self.fc2 = nn.Linear(head_dim, head_dim, bias=False)

    def features(self, x):
        return self.fc2(F.relu(self.fc1(x)))


@KERNELS.register("softmax_off_by_one")
class SoftmaxOffByOne(Kernel):
    """exp(s_j) / (1 + sum_j exp(s_j)): an extra zero logit ("quiet" softmax, Miller 2023)."""

    sdpa = True
    has_extra_logit = True

    def extra_logit(self):
        return torch.zeros(self.n_head)

    def weights(self, scores, allowed, info):
        return masked_softmax(scores, allowed, torch.zeros(self.n_head))


@KERNELS.register("sink_logit")
class SinkLogit(Kernel):
    """exp(s_j) / (exp(z_h) + sum_j exp(s_j)) with a learnable logit z_h per head (gpt-oss, OpenAI 2025)."""

    sdpa = True
    has_extra_logit = True

    def __init__(self, cfg, n_head, head_dim):
        super().__init__(cfg, n_head, head_dim)
        self.sink = nn.Parameter(torch.zeros(n_head))  # zero: starts as off-by-one softmax

    def extra_logit(self):
        return self.sink

    def weights(self, scores, allowed, info):
        return masked_softmax(scores, allowed, self.sink)


@KERNELS.register("relu")
class Relu(Kernel):
    """relu(q k^T / sqrt(d_h)) / i for the query at position i (ReLU attention, Guo et al. 2024)."""

    normalize_options = (False,)
    normalize_default = False

    def weights(self, scores, allowed, info):
        w = F.relu(scores) * allowed / info.query_pos.to(scores.dtype).view(1, 1, -1, 1)
        return w, None


@KERNELS.register("softpick")
class Softpick(Kernel):
    """relu(e^s_j - 1) / (sum_j |e^s_j - 1| + eps): rectified softmax (Zuhri et al. 2025)."""

    @property
    def rows_sum_to_one(self) -> bool:
        return False  # rows sum to at most 1

    def weights(self, scores, allowed, info):
        # Multiply numerator and denominator by e^-m (m = row max, >= 0) so nothing overflows; exact.
        m = scores.masked_fill(~allowed, float("-inf")).amax(dim=-1, keepdim=True).clamp_min(0.0)
        shifted = (torch.exp(scores.masked_fill(~allowed, 0.0) - m) - torch.exp(-m)) * allowed
        den = shifted.abs().sum(dim=-1, keepdim=True) + SOFTPICK_EPS * torch.exp(-m)
        return F.relu(shifted) / den, None


class _OneOption(Kernel):
    """A kernel with one option (options[0], kept as an attribute of that name: the rows' sum alpha, the
    norm's p) whose rows sum to one only when the option is 1."""

    def __init__(self, cfg, n_head, head_dim):
        super().__init__(cfg, n_head, head_dim)
        setattr(self, self.options[0], getattr(cfg, self.options[0]))

    @property
    def rows_sum_to_one(self) -> bool:
        return getattr(self, self.options[0]) == 1.0


@KERNELS.register("softmax_scaled")
class SoftmaxScaled(_OneOption):
    """alpha * softmax(s): rows sum to alpha instead of 1 (paper Table 14 left)."""

    sdpa = True
    options = ("alpha",)

    def sdpa_out_scale(self):
        return self.alpha

    def weights(self, scores, allowed, info):
        return self.alpha * masked_softmax(scores, allowed)[0], None


@KERNELS.register("softmax_pnorm")
class SoftmaxPNorm(_OneOption):
    """exp(s_j) / (sum_j exp(s_j)^p)^(1/p): p-normalised softmax (paper App. D.4, Fig. 29)."""

    options = ("p",)

    def weights(self, scores, allowed, info):
        s = scores.masked_fill(~allowed, float("-inf"))
        log_w = s - torch.logsumexp(self.p * s, dim=-1, keepdim=True) / self.p
        return torch.exp(log_w), None


@KERNELS.register("sigmoid_pnorm")
class SigmoidPNorm(_OneOption):
    """sigmoid(s_j) / (sum_j sigmoid(s_j)^p)^(1/p): p-normalised sigmoid (paper App. D.4, Fig. 29)."""

    options = ("p",)

    def weights(self, scores, allowed, info):
        w = torch.sigmoid(scores) * allowed
        return w / (w.pow(self.p).sum(dim=-1, keepdim=True) + NORM_EPS).pow(1.0 / self.p), None
