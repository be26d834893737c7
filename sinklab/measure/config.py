"""`MeasureConfig`: the options `sinklab measure` and `sinklab ablate` share — which tokens, how many, and how
to load and run the model — validated at construction, before anything loads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sinklab.measure import hf
from sinklab.measure.checks import MeasureError, check_count, check_eps
from sinklab.measure.inputs import BOS_MODES, check_size
from sinklab.measure.metrics import DEFAULT_EPS
from sinklab.observe import QUERY_BLOCK


@dataclass(frozen=True)
class MeasureConfig:
    length: int = 64  # tokens per sample T
    samples: int = 100  # samples measured
    eps: Sequence[float] = (DEFAULT_EPS,)  # thresholds; the first is the headline (each in (0, 1))
    bos: str = "auto"  # auto | always | never: BOS handling of text inputs
    batch_size: int = 8  # samples per forward pass
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str | torch.dtype | None = None  # model dtype (default float32, as the paper); maths in fp32
    tokenizer: str | Any | None = None  # a tokenizer hub id / folder / object (default: the model's)
    gguf_file: str | None = None  # a GGUF file inside the model folder (transformers' gguf loader)
    trust_remote_code: bool = False  # never by default
    allow_pickle: bool = False  # .bin (pickle) weights; safetensors only by default
    query_block: int = QUERY_BLOCK  # queries per block of recomputed weights
    progress: bool = False  # a progress bar over batches

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", tuple(check_eps(self.eps)))
        check_size(self.length, self.samples)
        check_count("--batch-size", self.batch_size, 1, " (samples per forward pass)")
        check_count("--query-block", self.query_block, 1, " (queries per block of recomputed weights)")
        if self.bos not in BOS_MODES:
            raise MeasureError(f"unknown --bos {self.bos!r}; accepted: {', '.join(BOS_MODES)}")
        hf.resolve_device(self.device)  # cheap checks, so that a bad --device or --dtype never creates --out
        hf.resolve_dtype(self.dtype)

    @property
    def eps_list(self) -> list[float]:
        return list(self.eps)
