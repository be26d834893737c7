"""Tiny configs and independent naive references shared by the model tests."""

from __future__ import annotations

import math

import torch

from sinklab.model import AttentionConfig, ModelConfig, SinkLM


def tiny_config(**kw) -> ModelConfig:
    attention = kw.pop("attention", {})
    base = dict(vocab_size=37, context=64, n_layer=2, n_head=4, d_model=32, d_ff=48)
    base.update(kw)
    return ModelConfig(attention=AttentionConfig(**attention), **base)


def tiny_model(seed: int = 0, **kw) -> SinkLM:
    torch.manual_seed(seed)
    return SinkLM(tiny_config(**kw)).double()


def naive_weight_row(
    name: str, s: list[float], i: int, seq_len: int, cfg: AttentionConfig, extra: float = 0.0
):
    """Weights of one query row from its visible scores s (python floats), written from the formulas.

    `i` is the 1-based query position; `extra` the sink logit. Returns (weights, mass of the extra logit)."""
    norm = cfg.resolved_normalize
    if name == "softmax":
        z = sum(math.exp(x) for x in s)
        return [math.exp(x) / z for x in s], None
    if name in ("softmax_off_by_one", "sink_logit"):
        z = math.exp(extra) + sum(math.exp(x) for x in s)
        return [math.exp(x) / z for x in s], math.exp(extra) / z
    if name == "softmax_scaled":
        z = sum(math.exp(x) for x in s)
        return [cfg.alpha * math.exp(x) / z for x in s], None
    if name == "softmax_pnorm":
        z = sum(math.exp(cfg.p * x) for x in s) ** (1 / cfg.p)
        return [math.exp(x) / z for x in s], None
    if name == "sigmoid_pnorm":
        sig = [1 / (1 + math.exp(-x)) for x in s]
        z = (sum(w**cfg.p for w in sig) + 1e-8) ** (1 / cfg.p)
        return [w / z for w in sig], None
    if name == "sigmoid":
        b = cfg.sigmoid_bias - (math.log(seq_len) if cfg.sigmoid_bias_log_len else 0.0)
        w = [1 / (1 + math.exp(-(x + b))) for x in s]
    elif name == "elu":
        w = [(x if x > 0 else math.exp(x) - 1) + 1 for x in s]
    elif name == "relu":
        return [max(x, 0.0) / i for x in s], None
    elif name == "softpick":
        den = sum(abs(math.exp(x) - 1) for x in s) + 1e-6
        return [max(math.exp(x) - 1, 0.0) / den for x in s], None
    elif name.startswith("linear_"):
        w = list(s)  # scores are already phi(q).phi(k)/sqrt(d)
        if norm:
            total = sum(w)
            z = total + 1e-8 if name == "linear_elu" else max(abs(total), 1.0)
            return [x / z for x in w], None
        return w, None
    else:
        raise KeyError(f"no naive reference for kernel {name!r}: add one to tests/model/helpers.py")
    if norm:
        z = sum(w) + 1e-8
        w = [x / z for x in w]
    return w, None


NAIVE_KERNELS = [
    "softmax",
    "softmax_off_by_one",
    "sink_logit",
    "softmax_scaled",
    "softmax_pnorm",
    "sigmoid_pnorm",
    "sigmoid",
    "elu",
    "relu",
    "softpick",
    "linear_elu",
    "linear_identity",
    "linear_mlp",
]
