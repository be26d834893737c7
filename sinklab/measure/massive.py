"""Massive activations of the first token (Sun et al. 2024; the paper's Sec. 3): one finder for `measure`
and `ablate`.

A first-token residual dimension d is *massive* at block l when mean |h_1[d]| (over samples) exceeds
`threshold` x the median of mean |h_t[d']| over positions 2..T and all dims d' at the output of block l.
`MassiveTable` accumulates what that needs from the blocks' outputs (one (D,) row per block, not the whole
(T, D) table); `find_massive` reads every block and reports:

- the ratio of every first-token dim at every block (the top dim and its ratio per block kept);
- the block where the ratio peaks (the largest anywhere: `largest`) and the block where it first becomes
  massive (`first_layer`: this can be a smaller precursor in another dim);
- the real massive dims: those over the threshold at the peak block, and the block where the peak dim first
  becomes massive (`layer`): ablate's massive-* rows act there on those dims, unless a block is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sinklab.observe import AttentionObserver

if TYPE_CHECKING:  # torch is imported where it is used: the summaries need massive_line only
    import torch

# |h_1[d]| / median |h|: a random-init model's largest first-token dim is ~3-6x, the trained 2-layer demo's
# 26x, billion-parameter LMs' hundreds to thousands (Sun et al. 2024).
DEFAULT_MASSIVE_THRESHOLD = 20.0


@dataclass
class MassiveTable:
    """Per block (from 0): the sums over samples of |h_1[d]| and h_1[d], and of the batch's median |h| at
    positions 2..T (the median of the batch-mean |h| table, weighted by batch size)."""

    first_abs: dict[int, torch.Tensor] = field(default_factory=dict)
    first: dict[int, torch.Tensor] = field(default_factory=dict)
    median: dict[int, float] = field(default_factory=dict)
    samples: dict[int, int] = field(default_factory=dict)

    def add(self, block: int, hidden: torch.Tensor) -> None:
        """hidden: (B, T, D) output of `block` (from 0), token 1 at index 0."""
        h = hidden.detach().float()
        b = h.shape[0]
        first = h[:, 0].double().cpu()
        rest = h[:, 1:].abs().mean(dim=0) if h.shape[1] > 1 else h[:, :1].abs().mean(dim=0)
        med = float(rest.median()) * b
        if block in self.first:
            self.first_abs[block] += first.abs().sum(0)
            self.first[block] += first.sum(0)
            self.median[block] += med
            self.samples[block] += b
        else:
            self.first_abs[block], self.first[block] = first.abs().sum(0), first.sum(0)
            self.median[block], self.samples[block] = med, b

    @property
    def blocks(self) -> list[int]:
        return sorted(self.first)

    def ratios(self, block: int) -> tuple[torch.Tensor, float]:
        """(D,) mean |h_1[d]| / median |h| at `block`, and that median."""
        n = self.samples[block]
        median = self.median[block] / n
        return self.first_abs[block] / n / max(median, 1e-12), median


class MassiveObserver(AttentionObserver):
    """Feeds a MassiveTable from the hidden states a runner hands over (no attention weights)."""

    def __init__(self) -> None:
        self.table = MassiveTable()

    def wants_layer(self, layer: int) -> bool:
        return False

    def add_hidden(self, index: int, hidden: torch.Tensor) -> None:
        if index >= 1:  # index i: the output of block i - 1
            self.table.add(index - 1, hidden)


@dataclass
class Massive:
    """The first token's massive residual dims: where they peak, where they first appear, where to act."""

    layer: int | None  # block (from 0) ablate acts at; None: no massive dim (or none at a chosen block)
    dims: list[int]  # the dims ablate acts on, largest ratio first
    ratios: list[float]  # their ratios at `layer`
    values: list[float]  # their mean signed h_1[d] at `layer`
    median: float | None  # median |h| at `layer`
    threshold: float
    largest: tuple[int, int, float]  # (block, dim, ratio) of the largest first-token ratio anywhere
    first_layer: int | None = None  # first block with any massive dim (may be a smaller precursor)
    first_dims: list[int] = field(default_factory=list)  # the massive dims at that block
    peak_dims: list[int] = field(default_factory=list)  # the massive dims at the peak block
    chosen: str = "peak"  # "peak": the peak dims where the peak dim first appears; "block": --massive-layer
    top_dim: list[int] = field(default_factory=list)  # per block: the first token's largest dim
    top_ratio: list[float] = field(default_factory=list)  # per block: its ratio

    @property
    def peak_layer(self) -> int:
        return self.largest[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "dims": self.dims,
            "ratios": self.ratios,
            "values": self.values,
            "median_abs": self.median,
            "threshold": self.threshold,
            "chosen": self.chosen,
            "largest": {"layer": self.largest[0], "dim": self.largest[1], "ratio": self.largest[2]},
            "peak_layer": self.peak_layer,
            "peak_dims": self.peak_dims,
            "first_layer": self.first_layer,
            "first_dims": self.first_dims,
            "by_layer": {"dim": self.top_dim, "ratio": self.top_ratio},
        }

    def describe(self) -> str:
        return massive_line(self.to_dict())


def massive_line(massive: dict[str, Any]) -> str:
    """One line from a Massive's dict (metrics.json `analyses.massive`, ablations.json `massive`): where
    the first token's ratio peaks and where it first becomes massive."""
    top = massive["largest"]
    b, d, r = top["layer"], top["dim"], top["ratio"]
    line = f"first-token dim {d} peaks at {r:.1f}x the median |h| at block {b} (from 0)"
    first, first_dims = massive.get("first_layer"), massive.get("first_dims") or []
    if first is None:
        return line + f", below the massive threshold {massive['threshold']:g}x"
    if first != b or first_dims[:1] != [d]:
        s = "s" if len(first_dims) > 1 else ""
        line += (
            f"; first massive (> {massive['threshold']:g}x) at block {first} in dim{s} "
            f"{', '.join(map(str, first_dims[:4]))}"
        )
    return line


def find_massive(table: MassiveTable, threshold: float, layer: int | None = None) -> Massive:
    """Massive first-token dims from every block of `table`. Without `layer`: the dims over the threshold
    at the block where the largest ratio peaks, located at the first block where the peak dim is massive
    (only those of them massive there too). With `layer`: the dims massive at that block."""
    import torch

    blocks = table.blocks
    if not blocks:
        raise ValueError("no block outputs were recorded")
    ratios = {b: table.ratios(b) for b in blocks}
    top_dim = [int(ratios[b][0].argmax()) for b in blocks]
    top_ratio = [float(ratios[b][0].max()) for b in blocks]
    peak = max(range(len(blocks)), key=lambda i: top_ratio[i])
    largest = (blocks[peak], top_dim[peak], top_ratio[peak])

    def over(b: int) -> list[int]:
        r = ratios[b][0]
        dims = torch.nonzero(r > threshold).flatten()
        return dims[r[dims].argsort(descending=True)].tolist()

    first_layer = next((b for b in blocks if over(b)), None)
    found = Massive(
        layer=None,
        dims=[],
        ratios=[],
        values=[],
        median=None,
        threshold=threshold,
        largest=largest,
        first_layer=first_layer,
        first_dims=over(first_layer) if first_layer is not None else [],
        peak_dims=over(largest[0]),
        chosen="peak" if layer is None else "block",
        top_dim=top_dim,
        top_ratio=top_ratio,
    )
    if layer is None:
        if first_layer is None:
            return found
        dim = largest[1]
        act = next(b for b in blocks if float(ratios[b][0][dim]) > threshold)
        dims = [d for d in found.peak_dims if float(ratios[act][0][d]) > threshold]
    else:
        if layer not in ratios:
            raise ValueError(f"block {layer} was not recorded (blocks {blocks[0]}..{blocks[-1]})")
        act, dims = layer, over(layer)
        if not dims:
            found.median = ratios[layer][1]
            return found
    r, median = ratios[act]
    n = table.samples[act]
    found.layer, found.dims, found.median = act, dims, median
    found.ratios = [float(r[d]) for d in dims]
    found.values = [float(table.first[act][d] / n) for d in dims]
    return found
