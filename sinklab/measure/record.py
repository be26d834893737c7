"""Streaming attention record: every layer's attention is reduced to per-key sums as it is produced.

Callers (the HF attention function, sinklab's own attention module) hand over weights one query block
at a time, so nothing of size samples x layers x heads x T x T ever exists. What is kept per sample is
alpha of shape (layers, heads, T) plus small per-position analysis sums (norms, angles).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from sinklab.measure.massive import MassiveTable
from sinklab.measure.metrics import key_divisors, proxy_denominator, proxy_normalize
from sinklab.model.attention_weights import repeat_kv
from sinklab.observe import QUERY_BLOCK, AttentionObserver


@dataclass
class _LayerSums:
    colsum: torch.Tensor  # (B, H, T) attention received by each key, proxy-normalised rows
    colsum_raw: torch.Tensor | None = None  # (B, H, T) raw weights, only for unnormalised kernels
    slot: torch.Tensor | None = None  # (B, H) mass on a virtual sink slot / sink logit
    slot_raw: torch.Tensor | None = None


@dataclass
class RecordResult:
    """What a whole measurement kept: small arrays only."""

    alpha: np.ndarray  # (S, L, H, T): proxy-normalised rows (= the weights for normalised kernels)
    alpha_raw: np.ndarray | None  # (S, L, H, T) raw weights, None when every layer was normalised
    slot_alpha: np.ndarray | None  # (S, L, H) the paper's Sink_1* importance of a sink slot
    slot_alpha_raw: np.ndarray | None
    key_norm: np.ndarray | None  # (L, T) mean over samples and KV heads of ||k_t||
    value_norm: np.ndarray | None  # (L, T)
    query_norm: np.ndarray | None  # (L, T)
    cos_first_key: np.ndarray | None  # (L, T) mean over heads of cos(q_t, k_1), t >= 2 (index 0 is NaN)
    cos_other_keys: np.ndarray | None  # (L, T) mean over heads and keys 2..t of cos(q_t, k_j)
    hidden_norm: np.ndarray | None  # (L+1, T) ||h_t|| after the embedding and after each block
    samples: int = 0
    massive: MassiveTable | None = None  # the first token's dims at each block's output

    def first_positions(self, k: int) -> RecordResult:
        """The same result with alpha of key positions 1..k only (--positions: the other columns were not
        computed whole); the analyses keep every position."""
        cut = {"alpha": self.alpha[..., :k]}
        if self.alpha_raw is not None:
            cut["alpha_raw"] = self.alpha_raw[..., :k]
        return replace(self, **cut)


@dataclass
class AttentionRecord(AttentionObserver):
    """Accumulates the metric and the Sec. 3 analyses over batches of equal-length sequences."""

    analyses: bool = True
    query_block: int = QUERY_BLOCK
    _batch: int = 0
    _seq_len: int = 0
    _layers: dict[int, _LayerSums] = field(default_factory=dict)
    _alpha: list[np.ndarray] = field(default_factory=list)
    _alpha_raw: list[np.ndarray] = field(default_factory=list)
    _slot: list[np.ndarray] = field(default_factory=list)
    _slot_raw: list[np.ndarray] = field(default_factory=list)
    _sums: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)
    _massive: MassiveTable = field(default_factory=MassiveTable)
    _samples: int = 0
    _any_raw: bool = False
    _any_slot: bool = False

    # ---- batch lifecycle (the AttentionObserver protocol, sinklab.observe) -------------------------
    @property
    def batch_shape(self) -> tuple[int, int]:
        return self._batch, self._seq_len

    def start_batch(self, batch_size: int, seq_len: int) -> None:
        self._batch, self._seq_len = batch_size, seq_len
        self._layers = {}

    def batch_alpha(self) -> tuple[list[_LayerSums], torch.Tensor]:
        """The batch's column sums per layer, and its alpha (B, L, H, T) on proxy-normalised rows."""
        if not self._layers:
            raise RuntimeError(
                "no attention was recorded in this batch: the model's attention did not reach the record"
            )
        n_layers = max(self._layers) + 1
        missing = sorted(set(range(n_layers)) - set(self._layers))
        if missing:
            raise RuntimeError(f"attention of layer(s) {missing} was not recorded")
        layers = [self._layers[i] for i in range(n_layers)]
        divisors = key_divisors(self._seq_len)
        return layers, torch.stack([s.colsum.float().cpu() for s in layers], dim=1) / divisors

    def end_batch(self) -> None:
        layers, alpha = self.batch_alpha()
        divisors = key_divisors(self._seq_len)
        self._alpha.append(alpha.numpy())
        if self._any_raw:
            raw = torch.stack(
                [(s.colsum_raw if s.colsum_raw is not None else s.colsum).float().cpu() for s in layers], 1
            )
            self._alpha_raw.append((raw / divisors).numpy())
        if self._any_slot:
            # The paper's bias slot is a virtual position 0 whose own row (A_00 = 1) is counted: /(T+1).
            def slot_alpha(values: list[torch.Tensor | None]) -> np.ndarray:
                no_slot = torch.full_like(layers[0].colsum[:, :, 0].cpu(), -1.0)  # alpha 0 for such a layer
                stacked = torch.stack([v.float().cpu() if v is not None else no_slot for v in values], 1)
                return ((1.0 + stacked) / (self._seq_len + 1)).numpy()

            self._slot.append(slot_alpha([s.slot for s in layers]))
            self._slot_raw.append(
                slot_alpha([s.slot_raw if s.slot_raw is not None else s.slot for s in layers])
            )
        self._samples += self._batch
        self._layers = {}

    # ---- attention weights -----------------------------------------------------------------------
    def _weights(
        self, layer: int, weights: torch.Tensor, start: int, slot: torch.Tensor | None, normalized: bool
    ):
        """Add one query block of attention weights.

        weights: (B, H, q, n) over the first n <= T real keys for queries start..start+q-1
            (a causal caller may stop at the last key its block can see; later keys count as zero).
        slot: (B, H, q) the weight of a virtual sink slot or sink logit, if the layer has one.
        normalized: False for kernels whose rows need not sum to one; the record then keeps both the
            paper's proxy-normalised numbers and the raw ones.
        """
        if weights.dim() != 4 or weights.shape[-1] > self._seq_len:
            raise ValueError(f"expected weights (B, H, q, <= {self._seq_len}), got {tuple(weights.shape)}")
        n_keys = weights.shape[-1]
        weights = weights.float()
        slot = slot.float() if slot is not None else None
        sums = self._layers.get(layer)
        if sums is None:
            b, h = weights.shape[:2]
            zeros = weights.new_zeros(b, h, self._seq_len)
            sums = _LayerSums(colsum=zeros)
            self._layers[layer] = sums
        if normalized:
            sums.colsum[..., :n_keys] += weights.sum(dim=2)
            if slot is not None:
                sums.slot = (sums.slot if sums.slot is not None else 0) + slot.sum(dim=2)
        else:
            self._any_raw = True
            norm = proxy_normalize(weights, slot)
            sums.colsum[..., :n_keys] += norm.sum(dim=2)
            if sums.colsum_raw is None:
                sums.colsum_raw = torch.zeros_like(sums.colsum)
            sums.colsum_raw[..., :n_keys] += weights.sum(dim=2)
            if slot is not None:
                slot_norm = slot.abs() / proxy_denominator(weights, slot)
                sums.slot = (sums.slot if sums.slot is not None else 0) + slot_norm.sum(dim=2)
                sums.slot_raw = (sums.slot_raw if sums.slot_raw is not None else 0) + slot.sum(dim=2)
        if slot is not None:
            self._any_slot = True

    # ---- Sec. 3 analyses -------------------------------------------------------------------------
    def _accumulate(self, name: str, index: int, per_position: torch.Tensor) -> None:
        bucket = self._sums.setdefault(name, {})
        value = per_position.detach().double().cpu()
        bucket[index] = bucket[index] + value if index in bucket else value

    def add_qkv(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor | None) -> None:
        """Norms and QK angles from q (B, Hq, T, D), k (B, Hk, T, D), v (B, Hk, T, Dv), after positions.

        The mean cosine of query i with the keys 2..i it sees is q_i/|q_i| . (sum_j k_j/|k_j|) / (i - 1):
        a prefix sum of unit keys, so the angles cost O(T D) instead of a second T x T product.
        """
        if not self.analyses:
            return
        q, k = q.detach().float(), k.detach().float()
        q_norm, k_norm = q.norm(dim=-1, keepdim=True), k.norm(dim=-1, keepdim=True)
        self._accumulate("query_norm", layer, q_norm[..., 0].mean(dim=1).sum(dim=0))
        self._accumulate("key_norm", layer, k_norm[..., 0].mean(dim=1).sum(dim=0))
        if v is not None:
            self._accumulate("value_norm", layer, v.detach().float().norm(dim=-1).mean(dim=1).sum(dim=0))
        # Unit vectors from the norms just taken (what F.normalize computes, without a second norm pass).
        qn = q / q_norm.clamp_min(1e-12)
        kn = k / k_norm.clamp_min(1e-12)
        kn = repeat_kv(kn, qn.shape[1] // kn.shape[1])
        cos_first = (qn * kn[:, :, :1]).sum(-1).mean(dim=1)  # (B, T)
        later_keys = torch.cumsum(kn, dim=2) - kn[:, :, :1]  # sum of unit keys 2..i (1-based), (B, H, T, D)
        counts = torch.arange(q.shape[2], device=q.device).clamp_min(1).to(q.dtype)  # i - 1, at least 1
        other = ((qn * later_keys).sum(-1) / counts).mean(dim=1)  # (B, T); query 1 has none (NaN later)
        self._accumulate("cos_first_key", layer, cos_first.sum(dim=0))
        self._accumulate("cos_other_keys", layer, other.sum(dim=0))

    def add_hidden(self, index: int, hidden: torch.Tensor) -> None:
        """||h_t|| of hidden states (B, T, D); index 0 is the embedding output, i the output of block i."""
        if self.analyses:
            self._accumulate("hidden_norm", index, hidden.detach().float().norm(dim=-1).sum(dim=0))
            if index >= 1:  # the massive-dims finder reads the blocks' outputs (sinklab.measure.massive)
                self._massive.add(index - 1, hidden)

    # ---- results ---------------------------------------------------------------------------------
    def _mean_table(self, name: str) -> np.ndarray | None:
        bucket = self._sums.get(name)
        if not bucket or not self._samples:
            return None
        rows = [bucket[i].numpy() / self._samples for i in sorted(bucket)]
        return np.stack(rows)

    def result(self) -> RecordResult:
        if not self._alpha:
            raise RuntimeError("nothing was recorded")
        cos_first = self._mean_table("cos_first_key")
        if cos_first is not None:
            cos_first[:, 0] = np.nan  # cos(q_1, k_1) is not "another position"
        cos_other = self._mean_table("cos_other_keys")
        if cos_other is not None:
            cos_other[:, 0] = np.nan
        return RecordResult(
            alpha=np.concatenate(self._alpha),
            alpha_raw=np.concatenate(self._alpha_raw) if self._any_raw else None,
            slot_alpha=np.concatenate(self._slot) if self._any_slot else None,
            slot_alpha_raw=np.concatenate(self._slot_raw) if self._any_slot else None,
            key_norm=self._mean_table("key_norm"),
            value_norm=self._mean_table("value_norm"),
            query_norm=self._mean_table("query_norm"),
            cos_first_key=cos_first,
            cos_other_keys=cos_other,
            hidden_norm=self._mean_table("hidden_norm"),
            samples=self._samples,
            massive=self._massive if self._massive.blocks else None,
        )
