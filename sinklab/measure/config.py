"""`MeasureConfig`: the options `sinklab measure` and `sinklab ablate` share — which tokens, how many, and how
to load and run the model — validated at construction, before anything loads. The commands' flags are
generated from it (sinklab.config.add_config_arguments), so it imports no torch at module level."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sinklab.measure.checks import (
    BOS_MODES,
    DEFAULT_EPS,
    RENAMED_BOS,
    MeasureError,
    check_count,
    check_eps,
    check_size,
)
from sinklab.observe import QUERY_BLOCK


@dataclass(frozen=True)
class MeasureConfig:
    gguf_file: str | None = None  # GGUF file name inside --model (transformers' gguf loader)
    # tokenizer hub id or folder, or a tokenizer object (default: the model's)
    tokenizer: str | Any | None = None
    # tokens per sample T >= 2; several (--length 16 32 64 256): one forward at the largest, every T' from
    # its first T' queries and keys (exact for causal models), with the paper's Fig. 3 (Sink_1 against T)
    length: tuple[int, ...] | int = 64
    samples: int = 100  # number of samples >= 1
    eps: Sequence[float] = (DEFAULT_EPS,)  # thresholds ε in (0, 1); the first is the headline
    # report key positions 1..K only (K <= --length): α from the fused attention kernel's log-sum-exp, no
    # T x T weights; the full mode (and a note) where that cannot apply
    positions: int | None = None
    # BOS handling of text inputs: auto (the tokenizer's own special tokens), sequence (BOS first), none
    bos: str = "auto"
    # join the documents (with the tokenizer's EOS between them) and cut --length-token windows (the paper's
    # packing); default: one sample per document, shorter ones skipped
    pack: bool = False
    batch_size: int = 8  # samples per forward pass >= 1
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    # model dtype: float32 (as the paper), bfloat16 or float16 (or a torch.dtype); the metric maths is fp32
    dtype: str | Any | None = None
    query_block: int = QUERY_BLOCK  # queries per block of recomputed weights >= 1
    trust_remote_code: bool = False  # allow the model repo's own code
    allow_pickle: bool = False  # allow .bin (pickle) weights; safetensors only by default
    progress: bool = False  # a progress bar over batches
    sweep: tuple[int, ...] | None = None  # the lengths of a one-pass sweep (set from several `length`s)

    def __post_init__(self) -> None:
        from sinklab.measure import hf

        object.__setattr__(self, "eps", tuple(check_eps(self.eps)))
        if isinstance(self.length, Sequence) and not isinstance(self.length, str):
            values = list(self.length)
            if not values:
                raise MeasureError("--length needs at least one value")
            for v in values:
                check_size(v, self.samples)
            if len(set(values)) > 1:
                object.__setattr__(self, "sweep", tuple(sorted(set(values))))
            object.__setattr__(self, "length", max(values))
        check_size(self.length, self.samples)
        if self.sweep is not None:
            sweep = tuple(sorted(set(self.sweep)))
            for v in sweep:
                check_size(v, self.samples)
            if sweep[-1] != self.length:
                raise MeasureError(f"the sweep's longest length {sweep[-1]} must be --length {self.length}")
            object.__setattr__(self, "sweep", sweep if len(sweep) > 1 else None)
        if self.positions is not None:
            check_count("--positions", self.positions, 1, " (key positions 1..K to report)")
            if self.positions > self.length:
                raise MeasureError(
                    f"--positions {self.positions} is past --length {self.length}: it takes K <= T"
                )
            if self.sweep is not None:
                raise MeasureError(
                    "--positions cannot be combined with several --length values (the length sweep needs "
                    "every key's weights); give one --length"
                )
        check_count("--batch-size", self.batch_size, 1, " (samples per forward pass)")
        check_count("--query-block", self.query_block, 1, " (queries per block of recomputed weights)")
        if self.bos in RENAMED_BOS:
            raise MeasureError(f"--bos {self.bos} is now spelled --bos {RENAMED_BOS[self.bos]}")
        if self.bos not in BOS_MODES:
            raise MeasureError(f"unknown --bos {self.bos!r}; accepted: {', '.join(BOS_MODES)}")
        hf.resolve_device(self.device)  # cheap checks, so that a bad --device or --dtype never creates --out
        hf.resolve_dtype(self.dtype)

    @property
    def eps_list(self) -> list[float]:
        return list(self.eps)


def make_config(config: MeasureConfig | None, options: dict[str, Any]) -> MeasureConfig:
    """`config` with `options` (MeasureConfig fields) on top; validated."""
    if config is None:
        return MeasureConfig(**options)
    return replace(config, **options) if options else config
