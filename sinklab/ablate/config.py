"""The ablation options of `sinklab ablate` and the ablation names, without torch: `sinklab ablate --help`
builds its flags from `AblationOptions` (sinklab.config.add_config_arguments)."""

from __future__ import annotations

from dataclasses import dataclass

SWAP_RANDOM = "random"
HEADS_SINK = "sink"
# |h_1[d]| / median |h| (sinklab.measure.massive, where the finder lives; repeated here so that
# `sinklab ablate --help` imports no torch, and a test checks the two agree).
DEFAULT_MASSIVE_THRESHOLD = 20.0
DEFAULT_SINK_TOKENS = (1, 4)
# The ablations, in the outputs' order (the window pair together); the registry (sinklab.ablate.ablations)
# holds one function each, and a test checks the two agree.
ABLATION_NAMES = (
    "mask-sink",
    "sink-value-zero",
    "massive-zero",
    "massive-mean",
    "swap-first",
    "window",
    "window+sinks",
)
ATTENTION_ABLATIONS = ("mask-sink", "sink-value-zero", "window", "window+sinks")


@dataclass
class AblationOptions:
    """The ablation options of `sinklab ablate` (positions 1-based, layers and heads 0-based)."""

    # key positions (from 1) that mask-sink masks and sink-value-zero zeroes
    positions: tuple[int, ...] = (1,)
    layers: tuple[int, ...] | None = None  # layers (from 0) for mask-sink / sink-value-zero (default: all)
    # heads (from 0) for mask-sink / sink-value-zero, or 'sink': heads with α₁ > ε (default: all)
    heads: tuple[int, ...] | str | None = None
    window: int | None = None  # window W in keys, itself included (default: --length // 4)
    sink_tokens: tuple[int, ...] = DEFAULT_SINK_TOKENS  # first tokens window+sinks keeps in view, a row each
    swap_token: int | str = SWAP_RANDOM  # swap-first: a token id, or 'random' (a random id per sample)
    seed: int = 0  # seed of swap-first's random tokens
    # a first-token dim is massive when |h| > this x the median |h|
    massive_threshold: float = DEFAULT_MASSIVE_THRESHOLD
    # block (from 0) whose output massive-* edits, its massive dims (default: the dims massive where the
    # first token's ratio peaks, edited at the block where the peak dim first becomes massive)
    massive_layer: int | None = None

    def __post_init__(self) -> None:  # lists (from Python or the command line) as tuples
        for name in ("positions", "layers", "heads", "sink_tokens"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                setattr(self, name, tuple(value))
