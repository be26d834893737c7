"""Run configuration: `model` (sinklab.model.ModelConfig), `data` (sinklab.data.config) and `train`.

Strict: unknown keys and bad values are errors that say what is accepted (`sinklab.config.from_dict`).
A run directory's config.json holds the fully resolved RunConfig plus provenance (version, git rev).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sinklab.config import check_choice as _choice
from sinklab.config import check_fields, from_dict, to_dict
from sinklab.config import check_integer as _integer
from sinklab.config import check_number as _positive
from sinklab.data.config import DataConfig
from sinklab.model.config import ModelConfig

SCHEDULES = ("constant", "cosine")
DECAY_SCOPES = ("all", "matrices")
DISTRIBUTED = ("ddp", "fsdp")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "float32", "bfloat16")  # torch's names, as `sinklab measure --dtype` takes them
RENAMED_PRECISIONS = {
    "fp32": "float32",
    "bf16": "bfloat16",
}  # the names before 0.2; an error says the new one


@dataclass
class TrainConfig:
    """Optimisation, evaluation, checkpoints and the execution setup."""

    steps: int = 1000  # optimizer steps
    batch_size: int = 32  # global batch, in sequences
    micro_batch_size: int | None = None  # per process; None: the whole per-process batch at once
    lr: float = 4e-4  # peak learning rate (AdamW)
    schedule: str = "constant"  # after warmup: constant (the paper's configs) or cosine down to min_lr
    min_lr: float = 0.0  # cosine only
    warmup: int = 100  # linear warmup steps from 0
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW (beta1, beta2), the paper's
    adam_eps: float = 1e-8  # AdamW epsilon
    weight_decay: float = 0.1  # decoupled (AdamW)
    decay: str = (
        "all"  # all: every parameter, norms and embeddings too (the paper); matrices: 2-D weights only
    )
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    seed: int = 0  # model init, and data order unless data.seed is set
    eval_every: int = 100  # validation loss + sink measurement every this many steps (and at 0 and the end)
    eval_eps: tuple[float, ...] = (0.3,)  # thresholds for Sink_k; the first is the headline one
    checkpoint_every: int = 500  # 0: only at the end
    keep_checkpoints: int = 0  # keep the newest this many; 0 keeps all
    distributed: str = "ddp"  # under torchrun: ddp or fsdp (FSDP2 fully_shard per block, then the root)
    device: str = "auto"  # auto: cuda when available
    precision: str = "auto"  # auto: bfloat16 autocast on CUDA, float32 on CPU
    compile: bool = False  # torch.compile the training forward (no gain on one CPU thread: benchmarks.md)
    threads: int | None = None  # torch intra-op threads per process; None leaves torch's default
    progress: bool = True  # tqdm bar with tokens/s and ETA
    tensorboard: bool = True  # TensorBoard events in DIR/tb

    def __post_init__(self) -> None:
        check_fields(self, "train.")  # types first: betas=0.9 is an error here, not a TypeError below
        self.eval_eps = tuple(float(e) for e in self.eval_eps)
        _integer("train.steps", self.steps, minimum=1)
        _integer("train.batch_size", self.batch_size, minimum=1)
        _integer("train.micro_batch_size", self.micro_batch_size, minimum=1, optional=True)
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"train.micro_batch_size={self.micro_batch_size} must divide train.batch_size="
                f"{self.batch_size} (the batch is accumulated from whole micro-batches)"
            )
        _positive("train.lr", self.lr)
        _positive("train.min_lr", self.min_lr, zero_ok=True)
        _integer("train.warmup", self.warmup)
        _choice("train.schedule", self.schedule, SCHEDULES)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"train.betas must be two numbers in [0, 1), got {self.betas}")
        _positive("train.adam_eps", self.adam_eps)
        _positive("train.weight_decay", self.weight_decay, zero_ok=True)
        _choice("train.decay", self.decay, DECAY_SCOPES)
        _positive("train.grad_clip", self.grad_clip, zero_ok=True)
        _integer("train.seed", self.seed)
        _integer("train.eval_every", self.eval_every, minimum=1)
        if not self.eval_eps or not all(0.0 < e < 1.0 for e in self.eval_eps):
            raise ValueError(f"train.eval_eps must be one or more numbers in (0, 1), got {self.eval_eps}")
        _integer("train.checkpoint_every", self.checkpoint_every)
        _integer("train.keep_checkpoints", self.keep_checkpoints)
        _choice("train.distributed", self.distributed, DISTRIBUTED)
        _choice("train.device", self.device, DEVICES)
        if self.precision in RENAMED_PRECISIONS:
            raise ValueError(
                f"train.precision={self.precision!r} is now spelled {RENAMED_PRECISIONS[self.precision]!r}"
            )
        _choice("train.precision", self.precision, PRECISIONS)
        _integer("train.threads", self.threads, minimum=1, optional=True)


@dataclass
class RunConfig:
    """Everything a run needs; config.json of a run directory holds it fully resolved."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        # The model's context is filled in from data.context when training (loop.resolve_model_config),
        # so options bounded by the sequence length are checked against data.context here.
        attention, context = self.model.attention, self.data.context
        if attention.prefix is not None and attention.prefix > context:
            raise ValueError(
                f"model.attention.prefix={attention.prefix} is longer than data.context={context}: the "
                f"prefix is not trained on, so no token would be left to predict; use a prefix of "
                f"1..{context}"
            )
        if attention.window is not None and attention.window > context:
            raise ValueError(
                f"model.attention.window={attention.window} is longer than data.context={context}, so it "
                f"would never mask anything (plain causal attention); use a window of 1..{context} or "
                "model.attention.mask=causal"
            )

    @property
    def data_seed(self) -> int:
        return self.train.seed if self.data.seed is None else self.data.seed


RUN_SECTIONS = tuple(f.name for f in dataclasses.fields(RunConfig))
# What may change when resuming a run: things that do not alter the numbers already produced (they are
# left out of the checkpoints' settings digest).
RESUME_KEYS = (
    "train.steps",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.progress",
    "train.tensorboard",
    "train.threads",
    "train.compile",
    "train.device",
    "train.distributed",
)
# Settings that change how a run is carried out or logged, never its numbers: a run trained with other
# values of these is still the same run (a sweep may adopt it).
HOW_NOT_WHAT = tuple(key for key in RESUME_KEYS if key != "train.steps")
# Settings that training fills in from the data (loop.resolve_model_config), so a run's config.json may
# differ from its preset in them without being another run.
RESOLVED_AT_TRAINING = ("model.vocab_size", "model.context")


def run_config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Strict loading of the model/data/train sections; provenance keys of config.json are ignored."""
    return from_dict(RunConfig, {k: v for k, v in data.items() if k in RUN_SECTIONS} | _unknown(data))


def _unknown(data: dict[str, Any]) -> dict[str, Any]:
    # Keys that are neither sections nor provenance still reach from_dict, which rejects them by name.
    return {k: v for k, v in data.items() if k not in RUN_SECTIONS and k not in PROVENANCE_KEYS}


PROVENANCE_KEYS = (
    "format",
    "token_files",
    "sinklab_version",
    "git_rev",
    "seed",
    "preset",
    "corpus_fingerprint",
    "tokenizer",
    "created",
    "world_size",
)


def run_config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    return to_dict(cfg)
