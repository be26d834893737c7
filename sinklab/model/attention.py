"""The attention module: projections, positions, a K/V slot, one kernel, and the dispatch between paths.

Coordinates. Keys are laid out as [front slots..., token sequence...]: the front holds the K/V bias slot
(`kv_bias` k/kv) and, on the SDPA path, a slot carrying a kernel's extra logit; the token sequence starts with
the prepended sink token when there is one. Slots and the sink token are visible to every query.

Paths (never a silent fallback: `backend` other than "auto" runs that path or raises):
- sdpa: F.scaled_dot_product_attention for the softmax family; masks other than causal become boolean masks,
  position biases float masks, slots extra keys (with zero "dummy" query rows so causality stays square).
- linear_scan: unnormalised linear kernels under a causal mask, by chunked prefix sums (exact).
- blockwise: every kernel, query blocks of `block_size`, each block recomputed in backward (checkpoint), so
  memory is O(T * block) instead of O(T^2).
- reference: the blockwise code with one block holding every query; the weights it computes are what tests
  compare against naive loops.
Blockwise and reference weights come from the attention-weights engine (sinklab.model.attention_weights,
the one the Hugging Face hook of `sinklab measure` uses too) with this layer's kernel. When a record is given,
the output still comes from the chosen path; the weights fed to the record are computed separately, by the
same engine without gradients, in the record's query blocks.

Edits (`AttentionContext.edit`, an `AttentionEdit` as `sinklab ablate` uses it) act on the token sequence
only: values of chosen tokens are changed right after the projection, and removed keys are taken out of the
mask every path uses (the record's weights included). Slots and a sink token stay visible. The kernel then
sees a removed key as not allowed: normalised kernels (softmax, Z = sum) renormalise over what remains;
unnormalised ones (sigmoid or linear without Z, relu) just lose the key's weight, since there is no
denominator to renormalise. A query left with no token key keeps its own row (`edits.keep_allowed`). SDPA
runs edits through its boolean/float mask; prefix sums cannot drop keys, so a key-removing edit runs the
blockwise path under `auto` and is an error under an explicit `linear_scan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from sinklab.model.attention_weights import BlockInfo, block_weights, repeat_kv
from sinklab.model.edits import keep_allowed
from sinklab.model.kernels import KERNELS, Kernel
from sinklab.model.sinks import KV_BIASES

if TYPE_CHECKING:
    from sinklab.model.config import ModelConfig
    from sinklab.model.edits import AttentionEdit
    from sinklab.model.masks import Mask
    from sinklab.model.positions import Position
    from sinklab.observe import AttentionObserver

LINEAR_SCAN_CHUNK = 64


@dataclass
class AttentionContext:
    """What every layer of one forward pass shares."""

    pos: torch.Tensor  # (T,) positions of the token sequence (a sink token included)
    n_sink: int  # prepended sink tokens (0 or 1)
    position: Position
    mask: Mask
    record: AttentionObserver | None = None
    cache: dict = field(default_factory=dict)  # masks shared by the layers
    edit: AttentionEdit | None = None  # an explicit change of keys / values (sinklab ablate); None: none


def full_allowed(
    rows: torch.Tensor, cols: torch.Tensor, n_front: int, n_sink: int, mask: Mask
) -> torch.Tensor:
    """(q, k) bool in full coordinates. Front slots are seen by every token query (a dummy query row
    r < n_front sees front keys <= r); the sink token is seen by every later token; real tokens follow
    `mask`."""
    r, c = rows.view(-1, 1), cols.view(1, -1)
    tr, tc = r - n_front, c - n_front
    real = mask.allowed((rows - n_front - n_sink).clamp_min(0), (cols - n_front - n_sink).clamp_min(0))
    token = torch.where(tc < n_sink, tc <= tr, (tr >= n_sink) & real)
    return torch.where(c < n_front, (r >= n_front) | (c <= r), (tr >= 0) & token)


def full_bias(
    rows: torch.Tensor, cols: torch.Tensor, n_front: int, ctx: AttentionContext
) -> torch.Tensor | None:
    """(H, q, k) position bias in full coordinates; zero on front slots and dummy rows."""
    if not ctx.position.has_bias:
        return None
    tr, tc = rows - n_front, cols - n_front
    bias = ctx.position.bias(ctx.pos[tr.clamp_min(0)], ctx.pos[tc.clamp_min(0)])
    keep = (tr >= 0).view(-1, 1) & (tc >= 0).view(1, -1)
    return bias * keep


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        a = cfg.attention
        self.layer = layer
        self.cfg = a
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.kv_heads, cfg.head_dim
        d, hd = cfg.d_model, cfg.head_dim
        # q, k and v in one matmul (rows [q; k; v]): one larger GEMM is faster than three small ones.
        # Export splits it into Hugging Face Llama's q_proj / k_proj / v_proj (export.py).
        self.qkv_sizes = (self.n_head * hd, self.n_kv_head * hd, self.n_kv_head * hd)
        self.qkv_proj = nn.Linear(d, sum(self.qkv_sizes), bias=False)
        out_in = hd if a.heads == "addition" else self.n_head * hd
        self.o_proj = nn.Linear(out_in, d, bias=False)
        self.gate_proj = nn.Linear(d, self.n_head * hd, bias=False) if a.gate else None
        self.kernel: Kernel = KERNELS.get(a.kernel)(a, self.n_head, hd)
        self.kv_bias = KV_BIASES.get(cfg.kv_bias)(cfg)

    def qkv_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The q, k and v projection matrices: views into `qkv_proj.weight` (in-place edits reach it)."""
        return self.qkv_proj.weight.split(self.qkv_sizes)

    # ---- dispatch ----------------------------------------------------------------------------------
    def choose_backend(self, ctx: AttentionContext, keys_edited: bool = False) -> str:
        """The path for this forward; `keys_edited`: an edit removes keys (prefix sums cannot)."""
        backend = self.cfg.backend
        scan_ok = self.kernel.linear_scan and ctx.mask.plain_causal and not ctx.position.has_bias
        if backend == "auto":
            if self.kernel.sdpa:
                return "sdpa"
            return "linear_scan" if scan_ok and not keys_edited else "blockwise"
        if backend == "linear_scan" and not scan_ok:
            raise ValueError("attention.backend='linear_scan' cannot add a position bias (alibi, relative)")
        if backend == "linear_scan" and keys_edited:
            raise ValueError(
                "attention.backend='linear_scan' cannot remove keys (an attention edit such as mask-sink or "
                "window): set attention.backend to 'auto' or 'blockwise' for this forward"
            )
        return backend

    def forward(self, x: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        b, t, _ = x.shape
        h, hkv = self.n_head, self.n_kv_head
        qkv = self.qkv_proj(x).view(b, t, h + 2 * hkv, self.head_dim).transpose(1, 2)  # (B, H+2Hkv, T, D)
        q, k, v = ctx.position.rotate_qkv(qkv, ctx.pos, h, hkv)  # q and k rotated in one call
        keep = None
        if ctx.edit is not None:
            v = self._edit_values(v, ctx)
            keep = ctx.edit.key_mask(self.layer, self.n_head, t - ctx.n_sink, t - ctx.n_sink, x.device)
        if ctx.record is not None:
            s = ctx.n_sink
            ctx.record.add_qkv(self.layer, q[:, :, s:], k[:, :, s:], v[:, :, s:])
        k, v = repeat_kv(k, self.n_head // self.n_kv_head), repeat_kv(v, self.n_head // self.n_kv_head)
        # The slot is a virtual position 0 prepended after RoPE, so its key is never rotated.
        if self.kv_bias.has_slot:
            k_slot, v_slot = self.kv_bias.slot_kv()
            k = torch.cat([k_slot.to(k.dtype).unsqueeze(0).expand(b, -1, -1).unsqueeze(2), k], dim=2)
            v = torch.cat([v_slot.to(v.dtype).unsqueeze(0).expand(b, -1, -1).unsqueeze(2), v], dim=2)
        n_front = int(self.kv_bias.has_slot)
        q, k = self.kernel.features(q), self.kernel.features(k)

        backend = self.choose_backend(ctx, keys_edited=keep is not None)
        if backend == "sdpa":
            out = self._sdpa(q, k, v, n_front, ctx, keep)
        elif backend == "linear_scan":
            out = self._linear_scan(q, k, v, n_front)
        else:
            edited = self._edited_allowed(keep, n_front, ctx) if keep is not None else None
            block = t if backend == "reference" else self.cfg.block_size
            out = self._blockwise(
                q, k, v, n_front, ctx, block, use_checkpoint=backend == "blockwise", edited=edited
            )
        if ctx.record is not None:
            edited = self._edited_allowed(keep, n_front, ctx) if keep is not None else None
            self._feed_weights(q, k, n_front, ctx, edited)

        if self.kv_bias.has_value_bias:
            out = out + self.kv_bias.value_bias().to(out.dtype).view(1, self.n_head, 1, self.head_dim)
        if self.gate_proj is not None:
            gate = torch.sigmoid(self.gate_proj(x)).view(b, t, self.n_head, self.head_dim).transpose(1, 2)
            out = out * gate
        if self.cfg.heads == "addition":
            out = out.sum(dim=1)  # (B, T, D): heads summed instead of concatenated
        else:
            out = out.transpose(1, 2).reshape(b, t, self.n_head * self.head_dim)
        return self.o_proj(out)

    # ---- edits -------------------------------------------------------------------------------------
    def _edit_values(self, v: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        """v (B, Hkv, T, D) with the edit's values for the token sequence (a sink token left alone)."""
        s = ctx.n_sink
        edited = ctx.edit.value(self.layer, v[:, :, s:], self.n_head)
        return torch.cat([v[:, :, :s], edited], dim=2) if s else edited

    def _edited_allowed(self, keep: torch.Tensor, n_front: int, ctx: AttentionContext) -> torch.Tensor:
        """(Bk, Hk, N, N) bool in full coordinates (N = n_front + T): the layer's mask with the keys `keep`
        (B?, H?, T_real, T_real) forbids removed among the token sequence; slots and the sink token stay
        visible. Layers returning the same `keep` share one tensor for the whole forward."""
        size = n_front + len(ctx.pos)
        key = ("edited_mask", id(keep), n_front, size, keep.device)
        hit = ctx.cache.get(key)
        if hit is not None:
            return hit[1]
        idx = torch.arange(size, device=keep.device)
        base = full_allowed(idx, idx, n_front, ctx.n_sink, ctx.mask)
        while keep.dim() < 4:
            keep = keep.unsqueeze(0)
        lead = n_front + ctx.n_sink
        out = base.expand(*keep.shape[:2], size, size).clone()
        # The "no key left" rule counts token keys only: a slot would otherwise take a masked row's mass.
        out[..., lead:, lead:] = keep_allowed(base[lead:, lead:], keep)
        ctx.cache[key] = (keep, out)  # `keep` is held so that its id cannot be reused during the forward
        return out

    # ---- paths -------------------------------------------------------------------------------------
    def _block(
        self,
        q_blk: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor | None,
        rows: torch.Tensor,
        n_front: int,
        ctx: AttentionContext,
        edited: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """One query block (full-coordinate `rows`) against keys k: (out, weights, extra-logit mass), the
        weights from the attention-weights engine with this layer's kernel. `edited`: the full-coordinate mask
        of an attention edit, used instead of the layer's own."""
        cols = torch.arange(k.shape[2], device=k.device)
        bias = full_bias(rows, cols, n_front, ctx)
        if edited is not None:
            allowed = edited[..., int(rows[0]) : int(rows[-1]) + 1, : k.shape[2]]
        else:
            # The same block mask serves every layer and the backward recomputation: build it once.
            key = ("block_mask", int(rows[0]), len(rows), k.shape[2], n_front, rows.device)
            allowed = ctx.cache.get(key)
            if allowed is None:
                allowed = full_allowed(rows, cols, n_front, ctx.n_sink, ctx.mask)
                ctx.cache[key] = allowed
        weights, extra = block_weights(
            q_blk,
            k,
            self.kernel.scale,
            allowed=allowed,
            bias=bias.to(q_blk.device) if bias is not None else None,
            kernel=self.kernel.weights,
            info=BlockInfo(query_pos=rows - n_front + 1, seq_len=len(ctx.pos)),
        )
        out = weights.to(v.dtype) @ v if v is not None else None
        return out, weights, extra

    def _blockwise(self, q, k, v, n_front, ctx, block, use_checkpoint, edited=None):
        t = q.shape[2]
        outs = []
        for start in range(0, t, block):
            stop = min(start + block, t)
            # Keys past the last one this block may see are skipped (future keys under causal masks).
            real_stop = ctx.mask.key_stop(max(stop - ctx.n_sink, 0), t - ctx.n_sink)
            k_stop = n_front + ctx.n_sink + real_stop
            rows = torch.arange(start, stop, device=q.device) + n_front

            def run(q_blk, k_blk, v_blk, rows=rows):
                return self._block(q_blk, k_blk, v_blk, rows, n_front, ctx, edited)[0]

            args = (q[:, :, start:stop], k[:, :, :k_stop], v[:, :, :k_stop])
            if use_checkpoint and torch.is_grad_enabled():
                # Recompute the block's weights in backward: nothing T x T is kept for autograd.
                outs.append(checkpoint(run, *args, use_reentrant=False))
            else:
                outs.append(run(*args))
        return torch.cat(outs, dim=2)

    def _sdpa(self, q, k, v, n_front, ctx, keep=None):
        b, h, t, d = q.shape
        logit = self.kernel.extra_logit() if self.kernel.has_extra_logit else None
        if logit is not None:
            # An extra logit z_h as one more slot: q gets a constant feature 1, real keys a 0, the slot key
            # z_h / scale there, so q.k_slot * scale = z_h; its value is 0.
            logit = logit.to(device=q.device, dtype=q.dtype)
            q = torch.cat([q, q.new_ones(b, h, t, 1)], dim=-1)
            k = torch.cat([k, k.new_zeros(b, h, k.shape[2], 1)], dim=-1)
            k_logit = torch.cat([k.new_zeros(h, d), (logit / self.kernel.scale).view(h, 1)], dim=-1)
            k = torch.cat([k_logit.view(1, h, 1, d + 1).expand(b, -1, -1, -1), k], dim=2)
            # v gets the extra (zero) feature too: SDPA's fused CPU/GPU kernels need equal q/k/v head dims.
            v = torch.cat([v, v.new_zeros(b, h, v.shape[2], 1)], dim=-1)
            v = torch.cat([v.new_zeros(b, h, 1, d + 1), v], dim=2)
            n_front += 1
        if n_front:
            q = torch.cat([q.new_zeros(b, h, n_front, q.shape[-1]), q], dim=2)  # dummy query rows
        size = q.shape[2]
        attn_mask, is_causal = None, False
        if keep is not None:
            # An edit: the edited boolean mask (per head when the edit is), the position bias added to it.
            allowed = self._edited_allowed(keep, n_front, ctx)
            idx = torch.arange(size, device=q.device)
            bias = full_bias(idx, idx, n_front, ctx)
            if bias is None:
                attn_mask = allowed
            else:
                neg_inf = torch.tensor(float("-inf"), device=q.device)
                attn_mask = torch.where(allowed, bias.to(q.device), neg_inf).to(q.dtype)
        elif ctx.mask.plain_causal and not ctx.position.has_bias:
            is_causal = True
        else:
            key = ("sdpa_mask", n_front, size, q.dtype, q.device)
            attn_mask = ctx.cache.get(key)
            if attn_mask is None:
                idx = torch.arange(size, device=q.device)
                allowed = full_allowed(idx, idx, n_front, ctx.n_sink, ctx.mask)
                bias = full_bias(idx, idx, n_front, ctx)
                if bias is None:
                    attn_mask = allowed.view(1, 1, size, size)
                else:
                    neg_inf = torch.tensor(float("-inf"), device=q.device)
                    attn_mask = torch.where(allowed, bias.to(q.device), neg_inf).to(q.dtype).unsqueeze(0)
                ctx.cache[key] = attn_mask
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=self.kernel.scale
        )
        out = out[:, :, n_front:, :d]
        scale = self.kernel.sdpa_out_scale()
        return out * scale if scale != 1.0 else out

    def _linear_scan(self, q, k, v, n_front):
        """out_i = scale * phi(q_i) . sum_{j<=i} phi(k_j) v_j^T, chunk by chunk (exact for causal masks)."""
        b, h, t, _ = q.shape
        scale = self.kernel.scale
        state = q.new_zeros(b, h, q.shape[-1], v.shape[-1])
        if n_front:
            state = state + k[:, :, :n_front].transpose(-1, -2) @ v[:, :, :n_front]
            k, v = k[:, :, n_front:], v[:, :, n_front:]
        outs = []
        for start in range(0, t, LINEAR_SCAN_CHUNK):
            stop = min(start + LINEAR_SCAN_CHUNK, t)
            qc, kc, vc = q[:, :, start:stop], k[:, :, start:stop], v[:, :, start:stop]
            causal = torch.ones(stop - start, stop - start, dtype=torch.bool, device=q.device).tril()
            intra = ((qc @ kc.transpose(-1, -2)) * causal) @ vc
            outs.append((intra + qc @ state) * scale)
            state = state + kc.transpose(-1, -2) @ vc
        return torch.cat(outs, dim=2)

    # ---- weights for the record ---------------------------------------------------------------------
    def _feed_weights(self, q, k, n_front, ctx, edited=None):
        """Weights over the real tokens, by query blocks, without gradients; slot = mass on the K/V slot,
        the sink token and any extra logit. Under an edit (`edited`), the edited weights."""
        n_sink = ctx.n_sink
        t_real = q.shape[2] - n_sink
        lead = n_front + n_sink  # columns that are not real tokens
        with torch.no_grad():
            for start in range(0, t_real, ctx.record.query_block):
                stop = min(start + ctx.record.query_block, t_real)
                rows = torch.arange(start, stop, device=q.device) + lead
                _, w, extra = self._block(
                    q[:, :, n_sink + start : n_sink + stop], k, None, rows, n_front, ctx, edited
                )
                slot = w[..., :lead].sum(-1) if lead else None
                if extra is not None:
                    slot = extra if slot is None else slot + extra
                ctx.record.add_weights(
                    self.layer, w[..., lead:], start, slot=slot, normalized=self.kernel.rows_sum_to_one
                )
