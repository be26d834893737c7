"""SinkLM: the one LLaMA-style decoder; every variant is a config option resolved through the registries."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn

from sinklab.model.attention import Attention, AttentionContext
from sinklab.model.config import ModelConfig
from sinklab.model.loss import head_cross_entropy
from sinklab.model.masks import MASKS
from sinklab.model.mlp import MLPS
from sinklab.model.norms import NORMS
from sinklab.model.positions import POSITIONS
from sinklab.model.sinks import KV_BIASES

if TYPE_CHECKING:
    from sinklab.model.edits import AttentionEdit
    from sinklab.observe import AttentionObserver

SINK_TOKEN_INIT_STD = 0.02

# Fused parameters and the separate ones they replaced (checkpoints written before the fusion hold those).
FUSED_PARAMETERS = {
    "self_attn.qkv_proj.weight": (
        "self_attn.q_proj.weight",
        "self_attn.k_proj.weight",
        "self_attn.v_proj.weight",
    ),
    "mlp.gate_up_proj.weight": ("mlp.gate_proj.weight", "mlp.up_proj.weight"),
}

V = TypeVar("V")


def legacy_groups(names: list[str] | set[str]) -> list[tuple[str, list[str]]]:
    """(fused name, [separate names]) for every group of separate projections found among `names`."""
    present = set(names)
    found = []
    for name in sorted(present):
        for fused, parts in FUSED_PARAMETERS.items():
            if name == parts[0] or name.endswith("." + parts[0]):
                prefix = name[: len(name) - len(parts[0])]
                separate = [prefix + p for p in parts]
                if all(n in present for n in separate):
                    found.append((prefix + fused, separate))
    return found


def upgrade_state_dict(state: Mapping[str, V], merge=torch.cat) -> dict[str, V]:
    """A state dict with separate q/k/v and gate/up matrices (written before they were fused) in the fused
    layout: each group concatenated along its rows by `merge`; a fused-layout state dict comes back as is.
    The concatenation is exact, so old checkpoints load without a change in their numbers."""
    out = dict(state)
    for fused, separate in legacy_groups(list(state)):
        out[fused] = merge([out.pop(n) for n in separate])
    return out


class Block(nn.Module):
    """Pre-LN: x + Attn(N1 x), then + FFN(N2 x). Post-LN (paper's `GPTpostln`): x <- N1(x + Attn(x)),
    x <- N2(x + FFN(x))."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        norm = NORMS.get(cfg.norm)
        self.post = cfg.norm_position == "post"
        self.input_layernorm = norm(cfg.d_model, eps=cfg.norm_eps)
        self.self_attn = Attention(cfg, layer)
        self.post_attention_layernorm = norm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp = MLPS.get(cfg.mlp)(cfg.d_model, cfg.ffn_dim)

    def forward(self, x: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        if self.post:
            x = self.input_layernorm(x + self.self_attn(x, ctx))
            return self.post_attention_layernorm(x + self.mlp(x))
        x = x + self.self_attn(self.input_layernorm(x), ctx)
        return x + self.mlp(self.post_attention_layernorm(x))


class SinkLM(nn.Module):
    """LLaMA-style decoder LM. `model(input_ids (B, T), record=None) -> logits (B, T, V)`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.position = POSITIONS.get(cfg.position)(cfg)
        self.mask = MASKS.get(cfg.attention.mask)(cfg.attention)
        self.sink_token = (
            nn.Parameter(torch.randn(cfg.d_model) * SINK_TOKEN_INIT_STD)
            if KV_BIASES.get(cfg.kv_bias).sink_token
            else None
        )
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        # Post-LN blocks end in a norm already; the paper's post-LN model has no final norm.
        self.norm = NORMS.get(cfg.norm)(cfg.d_model, eps=cfg.norm_eps) if cfg.norm_position == "pre" else None
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-NeoX small init (paper.md §4.2): every Linear and Embedding N(0, 2/(5 d)); the SwiGLU output
        projection N(0, (1/sqrt(d)/L)^2); norm gains 1. K/V biases and the sink token keep N(0, 0.02^2)."""
        cfg = self.config
        if cfg.init != "neox_small":
            return  # "torch_default": PyTorch's own initialisation, as built
        std = math.sqrt(2.0 / (5 * cfg.d_model))
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
        # Only SwiGLU's output gets the depth-scaled init, as in the paper's code (other FFNs do not).
        if cfg.mlp == "swiglu":
            for layer in self.layers:
                nn.init.normal_(
                    layer.mlp.down_proj.weight, mean=0.0, std=1 / math.sqrt(cfg.d_model) / cfg.n_layer
                )

    def loss_mask(self, seq_len: int) -> torch.Tensor:
        """(T,) bool over target tokens: True where token t counts as a prediction target (token 0 never)."""
        return self.mask.loss_mask(seq_len)

    def forward(
        self,
        input_ids: torch.Tensor,
        record: AttentionObserver | None = None,
        *,
        logits_to_keep: int = 0,
        edit: AttentionEdit | None = None,
        targets: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, V). With `record`, attention (in query blocks), q/k/v and hidden states feed it; the
        caller owns its batch (record.start_batch(B, T) before, record.end_batch() after); whole weight maps
        come from an observer too (`sinklab.observe.attention_maps`). `logits_to_keep` > 0 projects only
        the last positions (as in transformers): a measurement needs no logits, and the vocabulary
        projection is a large share of a small model's forward. `edit` (an
        `AttentionEdit`, `sinklab ablate`) changes every layer's keys / values on every path, weights
        included; None runs the plain forward. With `targets` (B, T) and the (T,) bool `target_mask` of
        counted targets, the training loss comes back instead of logits: the mean cross-entropy, with the
        head and the loss fused so that no (B, T, V) logits are formed (`sinklab.model.loss`)."""
        b, t = input_ids.shape
        if record is not None and record.batch_shape != (b, t):
            raise RuntimeError(
                f"record expects a batch of {record.batch_shape}; "
                f"call record.start_batch({b}, {t}) before the forward pass"
            )
        h = self.embed_tokens(input_ids)
        n_sink = 0
        if self.sink_token is not None:
            h = torch.cat([self.sink_token.to(h.dtype).view(1, 1, -1).expand(b, 1, -1), h], dim=1)
            n_sink = 1
        pos = torch.arange(t + n_sink, device=input_ids.device)
        if t + n_sink > self.config.context and self.config.position == "learned":
            raise ValueError(f"sequence of {t + n_sink} tokens exceeds model.context={self.config.context}")
        pos_embed = self.position.embed(pos)
        if pos_embed is not None:
            h = h + pos_embed.to(h.dtype)
        ctx = AttentionContext(
            pos=pos,
            n_sink=n_sink,
            position=self.position,
            mask=self.mask,
            record=record,
            edit=edit,
        )
        if record is not None:
            record.add_hidden(0, h[:, n_sink:])
        for i, layer in enumerate(self.layers):
            h = layer(h, ctx)
            if record is not None:
                record.add_hidden(i + 1, h[:, n_sink:])
        if self.norm is not None:
            h = self.norm(h)
        if n_sink:
            h = h[:, n_sink:]  # (sliced only then: a slice's backward fills and copies a full gradient)
        if targets is not None:
            if target_mask is None:
                raise ValueError("targets need a target_mask: the (T,) bool mask of counted targets")
            return head_cross_entropy(h, self.lm_head.weight, targets, target_mask)
        return self.lm_head(h[:, -logits_to_keep:] if logits_to_keep > 0 else h)

    def num_parameters(self, non_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.embed_tokens.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.lm_head.weight.numel()
        return n
