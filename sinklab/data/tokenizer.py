"""Tokenizers: a byte-level BPE trained on the training split (cached), or any Hugging Face tokenizer.

Both are used through `TextTokenizer`, a thin wrapper that exposes what packing needs (encode a batch,
EOS / BOS / pad ids, the vocabulary size) and can save an HF `PreTrainedTokenizerFast` folder into a run
directory, so `AutoTokenizer.from_pretrained(run_dir / "tokenizer")` loads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sinklab.data.cache import cache_dir
from sinklab.errors import SinklabError
from sinklab.io import atomic_write_json

EOS_TOKEN = "<|endoftext|>"
BOS_TOKEN = "<|bos|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = [EOS_TOKEN, BOS_TOKEN, PAD_TOKEN]
BPE_FORMAT = 1  # bump when the BPE recipe changes, so old cache entries are not reused


@dataclass
class TextTokenizer:
    """What the data pipeline needs from a tokenizer."""

    backend: Any  # tokenizers.Tokenizer (fast path for BPE) or a transformers tokenizer
    name: str
    eos_id: int
    bos_id: int
    pad_id: int
    vocab_size: int
    fingerprint: str
    hf_folder: Path | None = None  # a saved HF folder to copy into run directories

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids without any special tokens (packing adds EOS / BOS itself)."""
        from tokenizers import Tokenizer

        if isinstance(self.backend, Tokenizer):
            # encode_batch_fast skips character offsets, which packing never needs.
            encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
            return [e.ids for e in encode(texts, add_special_tokens=False)]
        return self.backend(texts, add_special_tokens=False)["input_ids"]

    def save(self, folder: Path) -> None:
        """Write an HF tokenizer folder (AutoTokenizer-loadable)."""
        folder = Path(folder)
        if self.hf_folder is not None:
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(self.hf_folder, tmp)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        else:
            self.backend.save_pretrained(str(folder))


def _bpe_key(corpus_fingerprint: str, vocab_size: int, max_chars: int) -> str:
    raw = json.dumps([BPE_FORMAT, corpus_fingerprint, vocab_size, max_chars]).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _limited(texts: Iterable[str], max_chars: int) -> Iterator[str]:
    used = 0
    for text in texts:
        if used >= max_chars:
            return
        text = text[: max_chars - used]
        used += len(text)
        yield text


def train_bpe(texts: Iterable[str], vocab_size: int, folder: Path) -> None:
    """Train a byte-level BPE (GPT-2 style pre-tokenization) and save it as an HF folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"data.vocab_size must be at least {256 + len(SPECIAL_TOKENS)} for a byte-level BPE")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknown token
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS_TOKEN, bos_token=BOS_TOKEN, pad_token=PAD_TOKEN
    )
    hf.save_pretrained(str(folder))


def load_bpe(
    texts: Iterable[str],
    corpus_fingerprint: str,
    vocab_size: int,
    max_chars: int,
    cache: Path | None = None,
    corpus: str | None = None,
) -> TextTokenizer:
    """The cached BPE for (corpus fingerprint, vocab size), trained on `texts` on a cache miss.

    `corpus` names the corpus in the message printed before training. A cached entry that cannot be read
    (damaged on disk) is rebuilt, and the user is told so."""
    key = _bpe_key(corpus_fingerprint, vocab_size, max_chars)
    folder = (cache or cache_dir()) / "tokenizers" / f"bpe-{vocab_size}-{key}"
    path = folder / "tokenizer.json"
    tok, problem = _read_bpe(folder) if path.exists() else (None, None)
    if problem is not None:
        print(
            f"sinklab: the cached tokenizer {path} is unreadable ({problem}); rebuilding it", file=sys.stderr
        )
        shutil.rmtree(folder, ignore_errors=True)
    if tok is None:
        # BPE training takes a while (20-60 s at the default sizes) and prints nothing of its own
        print(
            f"sinklab: training a {vocab_size}-token BPE tokenizer on the {corpus or 'training'} corpus "
            f"(first use; cached in {folder})",
            file=sys.stderr,
        )
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            train_bpe(_limited(texts, max_chars), vocab_size, tmp)
            atomic_write_json(
                tmp / "sinklab_tokenizer.json", {"corpus": corpus_fingerprint, "vocab_size": vocab_size}
            )
            with contextlib.suppress(OSError):  # another process finished the same entry first: keep theirs
                os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        tok, problem = _read_bpe(folder)
        if problem is not None:
            raise SinklabError(f"the cached tokenizer {path} is unreadable ({problem}); delete {folder}")
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    return TextTokenizer(
        backend=tok,
        name="bpe",
        eos_id=ids[EOS_TOKEN],
        bos_id=ids[BOS_TOKEN],
        pad_id=ids[PAD_TOKEN],
        vocab_size=tok.get_vocab_size(),
        fingerprint=f"bpe-{vocab_size}-{key}",
        hf_folder=folder,
    )


def _read_bpe(folder: Path) -> tuple[Any, str | None]:
    """(the tokenizers.Tokenizer of a cache entry, None), or (None, what is wrong with it)."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as err:  # tokenizers raises a bare Exception for a damaged file
        return None, str(err)
    missing = [t for t in SPECIAL_TOKENS if tok.token_to_id(t) is None]
    if missing:
        return None, f"it lacks {', '.join(missing)}"
    return tok, None


def load_hf_tokenizer(name: str, *, trust_remote_code: bool = False) -> TextTokenizer:
    """Any HF tokenizer by hub id or folder; BOS falls back to EOS where there is none (GPT-2, NeoX)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise FileNotFoundError(f"cannot load tokenizer {name!r}: {err}") from None
    if tok.eos_token_id is None:
        raise ValueError(f"tokenizer {name!r} has no EOS token, which packing needs between documents")
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    vocab = len(tok)
    digest = hashlib.sha256(json.dumps(sorted(tok.get_vocab().items())).encode()).hexdigest()[:16]
    return TextTokenizer(
        backend=tok,
        name=name,
        eos_id=tok.eos_token_id,
        bos_id=bos,
        pad_id=pad,
        vocab_size=vocab,
        fingerprint=f"hf-{digest}",
    )
