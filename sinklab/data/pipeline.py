"""From a DataConfig to ready batches: corpus -> tokenizer -> cached token files -> packed sequences.

Everything expensive (BPE training, tokenisation) is cached under the cache dir, keyed by the corpus
fingerprint and the tokenizer, so a second run (or another rank) only memory-maps the result.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sinklab.data.cache import cache_dir, remove_stale_temporaries
from sinklab.data.corpus import Corpus, load_corpus
from sinklab.data.evalset import EVAL_SAMPLE_KEY, eval_sequences
from sinklab.data.interventions import PositionInterventions
from sinklab.data.packing import (
    PackedSequences,
    TokenFile,
    TrainBatches,
    read_token_file,
    stream_tokens,
    token_file_key,
    write_token_file,
)
from sinklab.data.tokenizer import TextTokenizer, load_bpe, load_hf_tokenizer

if TYPE_CHECKING:
    from sinklab.data.config import DataConfig


@dataclass
class PreparedData:
    tokenizer: TextTokenizer
    train: TrainBatches
    val: np.ndarray  # (val_sequences, context + 1) for the validation loss
    eval_ids: np.ndarray  # (eval_samples, eval_length) the fixed sink-evaluation set
    corpus_fingerprint: str
    model_vocab_size: int  # the tokenizer's size rounded up to data.pad_vocab_to
    token_files: dict[str, dict]  # split -> manifest


def build_tokenizer(cfg: DataConfig, corpus: Corpus, fingerprint: str, cache: Path) -> TextTokenizer:
    if cfg.tokenizer == "bpe":
        return load_bpe(
            corpus.documents("train"),
            fingerprint,
            cfg.vocab_size,
            cfg.tokenizer_train_chars,
            cache,
            corpus=corpus.spec,
        )
    return load_hf_tokenizer(cfg.tokenizer)


def token_file(
    corpus: Corpus,
    split: str,
    tokenizer: TextTokenizer,
    fingerprint: str,
    bos_per_document: bool,
    cache: Path,
) -> TokenFile:
    """The split's token stream, tokenised once and memory-mapped afterwards."""
    key = token_file_key(fingerprint, tokenizer.fingerprint, bos_per_document)
    path = cache / "tokens" / key / f"{split}.bin"
    try:
        return read_token_file(path)
    except FileNotFoundError:
        reason = "first use"
    except (ValueError, KeyError, TypeError) as err:  # damaged on disk: build it again, and say so
        reason = f"the cached file was unreadable: {err}"
    # tokenising a corpus takes a while and prints nothing of its own
    print(
        f"sinklab: tokenising the {split} split of the {corpus.spec} corpus ({reason}; cached in "
        f"{path.parent})",
        file=sys.stderr,
    )
    chunks = stream_tokens(corpus.documents(split), tokenizer, bos_per_document=bos_per_document)
    meta = {
        "split": split,
        "corpus": corpus.spec,
        "corpus_fingerprint": fingerprint,
        "tokenizer": tokenizer.fingerprint,
        "bos_per_document": bos_per_document,
        "eos_id": tokenizer.eos_id,
        "bos_id": tokenizer.bos_id,
    }
    return write_token_file(path, chunks, tokenizer.vocab_size, meta)


def interventions_for(cfg: DataConfig, tokenizer: TextTokenizer, seed: int) -> PositionInterventions:
    if cfg.fixed_token is not None and cfg.fixed_token >= tokenizer.vocab_size:
        raise ValueError(
            f"data.fixed_token={cfg.fixed_token} is not a token of the tokenizer "
            f"(ids 0..{tokenizer.vocab_size - 1}, or null for its pad token)"
        )
    return PositionInterventions(
        random_start=cfg.random_start,
        random_end=cfg.random_end,
        random_vocab=tokenizer.vocab_size,
        fixed_position=cfg.fixed_position,
        fixed_token=tokenizer.pad_id if cfg.fixed_token is None else cfg.fixed_token,
        seed=seed,
    )


def prepare_data(cfg: DataConfig, *, batch_size: int, seed: int) -> PreparedData:
    cache = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else cache_dir()
    remove_stale_temporaries(cache)
    corpus = load_corpus(cfg.corpus, val_fraction=cfg.val_fraction, max_documents=cfg.max_documents)
    fingerprint = corpus.fingerprint()
    tokenizer = build_tokenizer(cfg, corpus, fingerprint, cache)
    files = {
        split: token_file(corpus, split, tokenizer, fingerprint, cfg.bos_per_document, cache)
        for split in ("train", "validation")
    }
    bos = tokenizer.bos_id if cfg.bos_per_sequence else None
    interventions = interventions_for(cfg, tokenizer, seed)
    train = TrainBatches.build(
        PackedSequences(files["train"].tokens, cfg.context, bos),
        batch_size=batch_size,
        seed=seed,
        fraction=cfg.fraction,
        interventions=interventions,
    )
    eval_interventions = interventions if cfg.intervene_eval else None
    val_packed = PackedSequences(files["validation"].tokens, cfg.context, bos)
    if len(val_packed) < cfg.val_sequences:
        raise ValueError(
            f"the validation split has only {len(val_packed)} sequences of {cfg.context + 1} tokens, "
            f"data.val_sequences = {cfg.val_sequences}; lower it or raise data.val_fraction"
        )
    val_rows = [val_packed[i] for i in range(cfg.val_sequences)]
    if eval_interventions is not None:
        # Keys after the evaluation set's, so random draws differ from both training and eval data.
        val_rows = [eval_interventions.apply(r, EVAL_SAMPLE_KEY * 2 + i) for i, r in enumerate(val_rows)]
    eval_ids = eval_sequences(
        files["validation"].tokens,
        length=cfg.eval_length,
        samples=cfg.eval_samples,
        bos_id=bos,
        interventions=eval_interventions,
    )
    padded = -(-tokenizer.vocab_size // cfg.pad_vocab_to) * cfg.pad_vocab_to
    return PreparedData(
        tokenizer=tokenizer,
        train=train,
        val=np.stack(val_rows),
        eval_ids=eval_ids,
        corpus_fingerprint=fingerprint,
        model_vocab_size=padded,
        token_files={s: f.manifest for s, f in files.items()},
    )
