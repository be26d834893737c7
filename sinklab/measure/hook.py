"""The `sinklab` attention function registered with transformers: the model's own attention, plus the
attention weights recomputed on the side for the measurement.

`register()` adds `sinklab` to transformers' `AttentionInterface` (and `AttentionMaskInterface`, with SDPA's
masks). `sinklab_attention_forward` runs the model's own attention exactly (SDPA, or the model's eager
function where SDPA cannot express it: logit softcapping, sink logits, models without SDPA support) and,
while a measurement is active (`measuring`, one per thread / async context), `feed_attention` recomputes the
weights one query block at a time with the attention-weights engine (sinklab.model.attention_weights) from
q, k, the mask, the scaling, softcapping and sink logits, and feeds them to the record. No T x T map of more
than one query block ever exists.

An optional `AttentionEdit` (used by `sinklab ablate`) changes the mask and/or the values of an attention
call before the model's own attention runs (`edited_mask`); the recomputed weights then see the edited mask
too. Without an edit nothing changes.

Models whose attention does not go through this registry (Falcon) are measured by sinklab.measure.hf's eager
fallback instead, from the maps of `output_attentions`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sinklab.model.attention_weights import (
    Scratch,
    block_weights,
    causal_bias,
    first_key_weights,
    repeat_kv,
)
from sinklab.model.edits import AttentionEdit, keep_allowed
from sinklab.observe import QUERY_BLOCK, AttentionObserver

ATTN_NAME = "sinklab"
# --positions K (the fast path): the first queries' whole rows are still recomputed, because the
# strongest-head map shows queries and keys 1..64 (sinklab.measure.observers.MAP_POSITIONS).
FULL_ROWS = 64
# Dtypes torch's CPU flash-attention kernel takes (the one that returns each row's log-sum-exp).
FUSED_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


# ---- attention edits --------------------------------------------------------------------------------
def edited_mask(
    mask: torch.Tensor | None, keep: torch.Tensor, causal: bool, q_len: int, kv_len: int
) -> torch.Tensor:
    """The layer's mask (None, boolean or additive) with the keys `keep` forbids removed.

    A query left with no key at all keeps its own row: softmax needs somewhere to put its mass (query 1
    only ever sees key 1, so masking key 1 leaves row 1 as it was)."""
    device = keep.device
    if mask is None or mask.dtype == torch.bool:
        base = mask
        if base is None:  # plain causal (or full) attention, which SDPA ran without a mask
            # Queries are the last q_len of kv_len positions: query i sees keys j <= i + kv_len - q_len.
            full = torch.ones(q_len, kv_len, dtype=torch.bool, device=device)
            base = (full.tril(kv_len - q_len) if causal else full)[None, None]
        return keep_allowed(base, keep)
    # An additive float mask (models that build their own): forbidden keys get the dtype's minimum.
    minimum = torch.finfo(mask.dtype).min
    return mask.masked_fill(~keep_allowed(mask > minimum / 2, keep), minimum)


def selected_keys_mask(
    mask: torch.Tensor | None, indices: torch.Tensor, causal: bool, q_len: int, kv_len: int
) -> torch.Tensor:
    """The layer's mask restricted to the keys a sparse-attention indexer selected: `indices` (B, q, k) are
    key positions per query, which models hand to a kernel that reads them (`indices=`) instead of folding
    them into the mask as they do for eager and SDPA; folded in here, SDPA and the recomputed weights see
    exactly the keys eager attention sees."""
    batch = indices.shape[0]
    selected = torch.zeros(batch, q_len, kv_len, dtype=torch.bool, device=indices.device)
    selected = selected.scatter(-1, indices.long().clamp(0, kv_len - 1), True)[:, None]
    if mask is None or mask.dtype == torch.bool:
        base = mask
        if base is None:
            full = torch.ones(q_len, kv_len, dtype=torch.bool, device=indices.device)
            base = (full.tril(kv_len - q_len) if causal else full)[None, None]
        return base & selected
    return mask.masked_fill(~selected, torch.finfo(mask.dtype).min)


# ---- the registered attention function ------------------------------------------------------------
@dataclass
class _Active:
    """The measurement currently running: which record to feed, how many attention calls so far, and an
    optional edit of every attention call's mask and values."""

    record: AttentionObserver | None
    query_block: int = QUERY_BLOCK
    use_sdpa: bool = True
    calls: int = 0
    scratch: Scratch | None = None
    edit: AttentionEdit | None = None
    # The record's layer of each attention module's own `layer_idx` (the model's index, so that hybrids and
    # models that skip layers are labelled right); None: count the calls. `seen` lists every call's layer_idx.
    layer_of: dict[int, int] | None = None
    seen: list[int | None] = field(default_factory=list)
    # Edited masks of this forward pass by (layer mask, edit mask): layers share both, so one is built once.
    # The tensors are kept with the result, so that their ids cannot be reused while the pass runs.
    edited: dict[tuple[int, int], tuple[Any, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    # --positions K: α of keys 1..K only, from the fused kernel's log-sum-exp; `fallbacks` counts the calls
    # that could not take that path, by reason (they ran the full recomputation instead).
    positions: int | None = None
    fallbacks: dict[str, int] = field(default_factory=dict)


# The measurement the registered function feeds, per thread / async context: two measurements running at
# once in different threads never see each other's record (a ContextVar, not a shared module global).
_ACTIVE: ContextVar[_Active | None] = ContextVar("sinklab_active_measurement", default=None)


@contextmanager
def measuring(
    record: AttentionObserver | None,
    *,
    query_block: int = QUERY_BLOCK,
    use_sdpa: bool = True,
    edit: AttentionEdit | None = None,
    layer_of: dict[int, int] | None = None,
    positions: int | None = None,
) -> Iterator[_Active]:
    """While inside, every `sinklab` attention call of this thread / async context feeds `record` (if given)
    and applies `edit` (if given); the `_Active` it yields counts the attention calls. `layer_of` maps the
    attention modules' `layer_idx` to the record's layers (else the calls are counted). `positions`: feed
    only what α of keys 1..K needs, through the fused kernel's log-sum-exp where a call allows it."""
    active = _Active(
        record,
        query_block=query_block,
        use_sdpa=use_sdpa,
        scratch=Scratch(),
        edit=edit,
        layer_of=layer_of,
        positions=positions,
    )
    token = _ACTIVE.set(active)
    try:
        yield active
    finally:
        _ACTIVE.reset(token)


def _additive_mask(
    mask: torch.Tensor | None, causal: bool, q_len: int, kv_len: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor | None:
    """The float mask an eager attention function expects, from the boolean/None mask SDPA gets."""
    if mask is not None and mask.dtype != torch.bool:
        return mask
    if mask is None:
        if not causal:
            return None
        # Queries are the last q_len of kv_len positions (no cache here, so q_len == kv_len in practice).
        bias = causal_bias(kv_len - q_len, kv_len, device=device, dtype=dtype, fill=torch.finfo(dtype).min)
        return bias[None, None]
    return torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, torch.finfo(dtype).min)


def _model_eager_function(module: nn.Module) -> Callable[..., Any] | None:
    return getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)


def _layer(active: _Active | None, module: nn.Module) -> int:
    """The record's layer of this call: by the module's own layer_idx where the runner mapped it, else the
    number of attention calls so far."""
    if active is None:
        return 0
    idx = getattr(module, "layer_idx", None)
    idx = idx if isinstance(idx, int) and not isinstance(idx, bool) else None
    active.seen.append(idx)
    if active.layer_of is not None and idx in active.layer_of:
        return active.layer_of[idx]
    return active.calls


def _apply_edit(
    active: _Active,
    layer: int,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    causal: bool,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The layer's mask and values with the active edit applied (an edited mask built once per pass)."""
    assert active.edit is not None
    keep = active.edit.key_mask(layer, query.shape[1], query.shape[2], key.shape[2], query.device)
    if keep is not None:
        cache_key = (id(mask), id(keep))
        hit = active.edited.get(cache_key)
        if hit is None:
            hit = (mask, keep, edited_mask(mask, keep, causal, query.shape[2], key.shape[2]))
            active.edited[cache_key] = hit
        mask = hit[2]
    return mask, active.edit.value(layer, value, query.shape[1])


def sinklab_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: the model's own attention output, plus statistics on the side."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    active = _ACTIVE.get()
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    layer = _layer(active, module)
    indices = kwargs.pop("indices", None)
    if isinstance(indices, torch.Tensor):  # sparse attention's top-k keys (DeepSeek-V3.2's indexer & co.)
        attention_mask = selected_keys_mask(attention_mask, indices, causal, query.shape[2], key.shape[2])
    if active is not None and active.edit is not None:
        attention_mask, value = _apply_edit(active, layer, query, key, value, attention_mask, causal)
    softcap = kwargs.get("softcap")
    sinks = kwargs.get("s_aux")
    if sinks is None:
        sinks = getattr(module, "sinks", None)
    if active is not None and active.record is not None and active.positions is not None:
        refusal = fast_path_refusal(
            active, query, key, value, attention_mask, dropout, softcap, sinks, kwargs
        )
        if refusal is None:
            return _fast_forward(active, layer, query, key, value, attention_mask, scaling, causal)
        active.fallbacks[refusal] = active.fallbacks.get(refusal, 0) + 1
    needs_eager = softcap is not None or sinks is not None or (active is not None and not active.use_sdpa)
    eager_fn = _model_eager_function(module) if needs_eager else None
    if needs_eager and eager_fn is not None:
        mask = _additive_mask(attention_mask, causal, query.shape[2], key.shape[2], query.dtype, query.device)
        out, _ = eager_fn(module, query, key, value, mask, dropout=dropout, scaling=scaling, **kwargs)
    elif needs_eager:
        raise RuntimeError(
            f"{type(module).__name__} needs eager attention but its module has no eager function"
        )
    else:
        out, _ = sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    if active is not None and active.record is not None:
        active.calls += 1
        if active.record.wants_layer(layer):
            with torch.no_grad():
                feed_attention(
                    active.record,
                    layer,
                    query,
                    key,
                    value,
                    attention_mask,
                    scaling=scaling,
                    causal=causal,
                    softcap=softcap,
                    sinks=sinks,
                    position_bias=kwargs.get("position_bias"),
                    query_block=active.query_block,
                    scratch=active.scratch,
                )
    elif active is not None:
        active.calls += 1
    return out, None


def feed_attention(
    record: AttentionObserver,
    layer: int,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor | None,
    mask: torch.Tensor | None,
    *,
    scaling: float | None,
    causal: bool = True,
    softcap: float | None = None,
    sinks: torch.Tensor | None = None,
    position_bias: torch.Tensor | None = None,
    query_block: int = QUERY_BLOCK,
    scratch: Scratch | None = None,
) -> None:
    """Recompute softmax weights in query blocks (fp32) exactly as eager attention would, and record them.

    query (B, H, T, D), key/value (B, Hkv, T, D) after positions; mask: None (causal or full), boolean
    (True = attend) or additive float, broadcastable to (B, H, T, T); sinks: (H,) sink logits (gpt-oss).
    """
    record.add_qkv(layer, query, key, value)
    h, q_len, d = query.shape[1:]
    kv_len = key.shape[2]
    if q_len != kv_len:
        raise RuntimeError(
            f"measurement needs a full forward without cache (got {q_len} queries, {kv_len} keys)"
        )
    scratch = scratch or Scratch()
    # fp32, contiguous and with the K/V heads repeated once per call, not once per block.
    q = query.float().contiguous()
    k = repeat_kv(key, h // key.shape[1]).float().contiguous()
    scale = scaling if scaling is not None else d**-0.5
    # Without a mask, a causal block sees no key at or after its last query: the engine computes only the
    # keys it can see (`causal`). A boolean mask that hides every future key allows the same cut, here.
    is_bool = mask is not None and mask.dtype == torch.bool
    prefix_only = is_bool and not bool(
        (mask & torch.ones(q_len, kv_len, dtype=torch.bool, device=mask.device).triu(1)).any()
    )
    additive = mask if mask is not None and not is_bool else None
    for start in range(0, q_len, query_block):
        stop = min(start + query_block, q_len)
        n_keys = stop if prefix_only else kv_len
        bias = position_bias[..., start:stop, :n_keys] if position_bias is not None else None
        if additive is not None:
            block_mask = additive[..., start:stop, :n_keys]
            bias = block_mask if bias is None else bias + block_mask
        weights, slot = block_weights(
            q[:, :, start:stop],
            k[:, :, :n_keys],
            scale,
            allowed=mask[..., start:stop, :n_keys] if is_bool else None,
            causal=start if mask is None and causal else None,
            bias=bias,
            softcap=softcap,
            sink_logit=sinks,
            scratch=scratch,
        )
        record.add_weights(layer, weights, start, slot=slot)


# ---- --positions K: α of the first keys from the fused kernel's log-sum-exp ---------------------------
def fast_path_refusal(
    active: _Active,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    dropout: float,
    softcap: float | None,
    sinks: torch.Tensor | None,
    kwargs: dict[str, Any],
) -> str | None:
    """Why this attention call cannot take the log-sum-exp path (None: it can). The shortcut is exact only
    for plain softmax rows that torch's CPU flash kernel computes, the kernel SDPA itself runs there."""
    mask = kwargs.get("attention_mask")
    reasons = (
        (softcap is not None, "logit softcapping (the fused kernel has none)"),
        (sinks is not None, "sink logits (a softmax denominator term that belongs to no key)"),
        (kwargs.get("position_bias") is not None, "an additive position bias"),
        (active.edit is not None, "attention edits"),
        (not active.use_sdpa, "the model does not support SDPA"),
        (query.device.type != "cpu", f"{query.device.type} tensors (the log-sum-exp kernel is CPU-only)"),
        (dropout not in (0, 0.0), "attention dropout"),
        (query.shape[2] != key.shape[2], "a key/value cache"),
        (
            not query.shape[-1] == key.shape[-1] == value.shape[-1],
            "different head sizes for queries, keys and values",
        ),
        (query.dtype not in FUSED_DTYPES, f"dtype {query.dtype}"),
        (any(t.stride(-1) != 1 for t in (query, key, value)), "non-contiguous head dimensions"),
        (mask is not None and mask.dtype not in (torch.bool, query.dtype), "a mask of another dtype"),
    )
    return next((why for refused, why in reasons if refused), None)


def fused_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float | None,
    causal: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(output (B, T, H, D) as transformers' SDPA path returns it, log-sum-exp (B, H, T) of every row): the
    CPU flash kernel that F.scaled_dot_product_attention runs for these inputs, called directly because only
    the direct call returns the log-sum-exp; the output is bit for bit SDPA's."""
    groups = query.shape[1] // key.shape[1]
    if groups > 1 and mask is not None:  # as transformers does: grouped K/V natively only without a mask
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    is_causal = query.shape[2] > 1 and mask is None and causal
    if mask is not None and mask.dtype == torch.bool:  # what SDPA does with a boolean mask before the kernel
        mask = torch.zeros(mask.shape, dtype=query.dtype, device=query.device).masked_fill_(
            ~mask, float("-inf")
        )
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query, key, value, 0.0, is_causal, attn_mask=mask, scale=scaling
    )
    return out.transpose(1, 2).contiguous(), lse


def _fast_forward(
    active: _Active,
    layer: int,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float | None,
    causal: bool,
) -> tuple[torch.Tensor, None]:
    out, lse = fused_attention(query, key, value, mask, scaling, causal)
    active.calls += 1
    record = active.record
    if record is not None and active.positions is not None and record.wants_layer(layer):
        with torch.no_grad():
            feed_first_positions(
                record,
                layer,
                query,
                key,
                value,
                mask,
                lse,
                scaling=scaling,
                causal=causal,
                positions=active.positions,
                scratch=active.scratch,
            )
    return out, None


def feed_first_positions(
    record: AttentionObserver,
    layer: int,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor | None,
    mask: torch.Tensor | None,
    lse: torch.Tensor,
    *,
    scaling: float | None,
    causal: bool,
    positions: int,
    scratch: Scratch | None = None,
) -> None:
    """Feed `record` what α of keys 1..`positions` needs: the whole rows of the first FULL_ROWS queries (the
    strongest-head map), then for every later query only its weights on keys 1..K, from the row's
    log-sum-exp. The record's other columns are then incomplete; the caller keeps α_1..α_K only."""
    record.add_qkv(layer, query, key, value)
    q_len, d = query.shape[2:]
    kv_len = key.shape[2]
    scale = scaling if scaling is not None else d**-0.5
    rows = min(q_len, FULL_ROWS)
    is_bool = mask is not None and mask.dtype == torch.bool
    additive = mask if mask is not None and not is_bool else None
    # The first rows' keys: those up to `rows`, unless the mask lets one of them see a later key.
    if mask is None:
        later = not causal
    else:
        corner = mask[..., :rows, rows:]
        later = bool((corner if is_bool else corner > torch.finfo(mask.dtype).min / 2).any())
    n_keys = kv_len if later else rows
    weights, _ = block_weights(
        query[:, :, :rows].float(),
        key[:, :, :n_keys].float(),
        scale,
        allowed=mask[..., :rows, :n_keys] if is_bool else None,
        causal=0 if mask is None and causal else None,
        bias=additive[..., :rows, :n_keys] if additive is not None else None,
        scratch=scratch,
    )
    record.add_weights(layer, weights, 0)
    if rows < q_len:
        first = first_key_weights(
            query,
            key,
            lse,
            scale,
            min(positions, kv_len),
            rows,
            allowed=mask if is_bool else None,
            causal=causal,
            bias=additive,
        )
        record.add_weights(layer, first, rows)


def register() -> None:
    """Register the `sinklab` attention and mask functions with transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_NAME, sinklab_attention_forward)
    # The same boolean masks SDPA gets (None where plain causal suffices), so SDPA runs exactly as usual.
    AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)
