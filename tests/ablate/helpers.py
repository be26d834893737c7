"""Independent references for the ablation tests: plain eager forwards of a Hugging Face model, edited with
module hooks (a pre-hook that rewrites an attention module's mask, a hook on the value projection or on a
block's output), never through sinklab's registered attention function."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def write_ids(path: Path, samples: int, length: int, vocab: int = 300, seed: int = 1) -> torch.Tensor:
    """An ids: input file, so that a test and sinklab ablate see exactly the same tokens."""
    ids = torch.randint(3, vocab, (samples, length), generator=torch.Generator().manual_seed(seed))
    path.write_text("".join(json.dumps({"input_ids": row}) + "\n" for row in ids.tolist()))
    return ids


def blocks(model: nn.Module) -> nn.ModuleList:
    return model.transformer.h if hasattr(model, "transformer") else model.model.layers


def attention(block: nn.Module) -> nn.Module:
    return block.attn if hasattr(block, "attn") else block.self_attn


def losses(model: nn.Module, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(B, T-1) next-token losses and every layer's attention map, from one eager forward."""
    with torch.no_grad():
        out = model(ids, use_cache=False, output_attentions=True)
    flat = out.logits[:, :-1].float().flatten(0, 1)
    loss = F.cross_entropy(flat, ids[:, 1:].flatten(), reduction="none").view(ids.shape[0], -1)
    return loss.double(), list(out.attentions)


def mask_hooks(model: nn.Module, keep: Callable[[int, int], torch.Tensor | None]) -> list:
    """Pre-hooks that put -inf (the dtype's minimum) where keep(layer, T) is False into each attention
    module's own additive mask, leaving the model's causal / sliding-window entries as they were."""
    handles = []
    for layer, block in enumerate(blocks(model)):

        def hook(module, args, kwargs, layer=layer):
            mask = kwargs.get("attention_mask")
            hidden = kwargs.get("hidden_states", args[0] if args else None)
            t = hidden.shape[1]
            allowed = keep(layer, t)
            if allowed is None:
                return None
            if mask is None:
                causal = torch.ones(t, t, dtype=torch.bool).tril()
                mask = torch.zeros(1, 1, t, t).masked_fill(~causal, torch.finfo(torch.float32).min)
            assert mask.dtype != torch.bool and mask.shape[-1] == t
            kwargs["attention_mask"] = mask.masked_fill(~allowed, torch.finfo(mask.dtype).min)
            return args, kwargs

        handles.append(attention(block).register_forward_pre_hook(hook, with_kwargs=True))
    return handles


def value_hooks(model: nn.Module, position: int, kv_heads: list[int] | None, head_dim: int) -> list:
    """Zero the value vector of 1-based `position` at the value projection's output (all or some KV heads)."""
    handles = []
    for block in blocks(model):
        attn = attention(block)
        if hasattr(attn, "c_attn"):  # GPT-2: q, k, v fused in one projection
            width = attn.c_attn.nf // 3

            def hook(module, args, out, width=width):
                out = out.clone()
                out[:, position - 1, 2 * width :] = 0
                return out

            handles.append(attn.c_attn.register_forward_hook(hook))
        else:

            def hook(module, args, out):
                out = out.clone()
                heads = kv_heads if kv_heads is not None else range(out.shape[-1] // head_dim)
                for h in heads:
                    out[:, position - 1, h * head_dim : (h + 1) * head_dim] = 0
                return out

            handles.append(attn.v_proj.register_forward_hook(hook))
    return handles


def block_output_hook(model: nn.Module, layer: int, dims: list[int], mode: str) -> list:
    """Set the first token's `dims` of block `layer`'s output to zero / to their mean over positions 2..T."""

    def hook(module, args, out):
        hidden = (out[0] if isinstance(out, tuple) else out).clone()
        for d in dims:
            hidden[:, 0, d] = 0 if mode == "zero" else hidden[:, 1:, d].mean(dim=1)
        return (hidden, *out[1:]) if isinstance(out, tuple) else hidden

    return [blocks(model)[layer].register_forward_hook(hook)]


def remove(handles: list) -> None:
    for h in handles:
        h.remove()
