"""`DataConfig`: corpus, tokenizer, packing, interventions and the evaluation set of a training run.

The `data` section of a run's config (`sinklab.train.config.RunConfig`); strict like every config section.
"""

from __future__ import annotations

from dataclasses import dataclass

from sinklab.config import check_choice as _choice
from sinklab.config import check_fields
from sinklab.config import check_integer as _integer

BOS_MODES = ("none", "sequence", "document", "both")


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
