"""Run configuration: `model` (sinklab.model.ModelConfig), `data` and `train` sections.

Strict: unknown keys and bad values are errors that say what is accepted (`sinklab.config.from_dict`).
A run directory's config.json holds the fully resolved RunConfig plus provenance (version, git rev).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from sinklab.config import check_fields, from_dict, to_dict
from sinklab.model.config import ModelConfig

BOS_MODES = ("none", "sequence", "document", "both")
SCHEDULES = ("constant", "cosine")
DECAY_SCOPES = ("all", "matrices")
DISTRIBUTED = ("ddp", "fsdp")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


def _choice(name: str, value: object, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise ValueError(f"{name} must be one of {', '.join(accepted)}; got {value!r}")


def _positive(name: str, value: float, *, zero_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be {'>= 0' if zero_ok else '> 0'}, got {value}")


def _integer(name: str, value: object, *, minimum: int = 0, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum}{' or null' if optional else ''}, got {value!r}"
        )


@dataclass
class DataConfig:
    """Corpus, tokenizer, packing, interventions and the evaluation set."""

    corpus: str = (
        "stdlib"  # stdlib | a .txt/.jsonl/.parquet file or folder | hf:NAME[:CONFIG][:SPLIT][:COLUMN]
    )
    val_fraction: float = 0.02  # share of documents (by hash of their key) in the validation split
    max_documents: int | None = None  # per split; bounds a streamed HF dataset
    tokenizer: str = "bpe"  # "bpe": byte-level BPE trained on the train split; else an HF tokenizer id/folder
    vocab_size: int = 4096  # BPE only
    tokenizer_train_chars: int = 20_000_000  # BPE is trained on the first this many characters
    pad_vocab_to: int = 64  # the model's vocabulary is the tokenizer's, rounded up to a multiple of this
    context: int = 64  # training sequence length
    # none: the paper's packing (a sequence starts anywhere); sequence: the same BOS at position 0 of every
    # sequence; document: BOS before every document in the stream; both. true/false mean sequence/none.
    bos: str = "none"
    fraction: float = 1.0  # train on this fraction of the training sequences (paper Sec. 5, amount of data)
    random_start: int | None = None  # random tokens at positions [random_start, random_end) (0-based)
    random_end: int | None = None  # ... to this 0-based position (exclusive)
    fixed_position: int | None = None  # a fixed token at this 0-based position of every sequence
    fixed_token: int | None = None  # None: the tokenizer's pad token (the paper used <|padding|>)
    intervene_eval: bool = True  # apply the position interventions to validation and evaluation data too
    eval_samples: int = 100  # the sink-evaluation set: this many sequences ...
    eval_length: int = 64  # ... of this many tokens (the paper: 100 x 64, no BOS)
    val_sequences: int = 32  # validation loss over this many context-length sequences
    seed: int | None = None  # data order and interventions; None: train.seed
    cache_dir: str | None = None  # tokenizers and token files; None: $SINKLAB_CACHE or ~/.cache/sinklab

    def __post_init__(self) -> None:
        if isinstance(self.bos, bool) or str(self.bos).lower() in ("true", "false"):
            self.bos = "sequence" if str(self.bos).lower() == "true" else "none"
        check_fields(self, "data.")
        _choice("data.bos", self.bos, BOS_MODES)
        if not isinstance(self.corpus, str) or not self.corpus:
            raise ValueError("data.corpus must be a non-empty string (stdlib, a path, or hf:NAME...)")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"data.fraction must be in (0, 1], got {self.fraction}")
        _integer("data.max_documents", self.max_documents, minimum=1, optional=True)
        _integer("data.vocab_size", self.vocab_size, minimum=259)
        _integer("data.tokenizer_train_chars", self.tokenizer_train_chars, minimum=1)
        _integer("data.pad_vocab_to", self.pad_vocab_to, minimum=1)
        _integer("data.context", self.context, minimum=2)
        _integer("data.eval_samples", self.eval_samples, minimum=1)
        _integer("data.eval_length", self.eval_length, minimum=2)
        _integer("data.val_sequences", self.val_sequences, minimum=1)
        _integer("data.seed", self.seed, optional=True)
        _integer("data.random_start", self.random_start, optional=True)
        _integer("data.random_end", self.random_end, optional=True)
        _integer("data.fixed_position", self.fixed_position, optional=True)
        _integer("data.fixed_token", self.fixed_token, optional=True)
        if (self.random_start is None) != (self.random_end is None):
            raise ValueError("data.random_start and data.random_end must be set together")
        if self.random_start is not None and not self.random_start < self.random_end <= self.context:
            raise ValueError(
                f"random positions [{self.random_start}, {self.random_end}) must be non-empty and within "
                f"data.context = {self.context}"
            )
        if self.fixed_position is not None and self.fixed_position >= self.context:
            raise ValueError(
                f"data.fixed_position {self.fixed_position} is outside data.context {self.context}"
            )

    @property
    def bos_per_sequence(self) -> bool:
        return self.bos in ("sequence", "both")

    @property
    def bos_per_document(self) -> bool:
        return self.bos in ("document", "both")


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
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the training forward
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
