"""Packing as in the paper: documents joined with EOS (BOS optional) and cut into fixed-length sequences.

A split is tokenised once into a flat memory-mapped token file plus a JSON manifest, cached by the
corpus and tokenizer fingerprints. Sequences are non-overlapping blocks of context + 1 tokens (input =
the first context, target = shifted by one), so a sequence usually starts inside a document. With
`bos="sequence"` every sequence instead starts with the same BOS followed by `context` stream tokens.
The training order is a pure function of (seed, sample index), so resuming needs only the step.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from sinklab.data.interventions import PositionInterventions, keep_fraction
from sinklab.data.tokenizer import TextTokenizer
from sinklab.io import atomic_write_json

TOKEN_FILE_FORMAT = 1


def _batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def stream_tokens(
    documents: Iterable[str], tokenizer: TextTokenizer, *, bos_per_document: bool
) -> Iterator[np.ndarray]:
    """Chunks of the token stream: [BOS] doc EOS [BOS] doc EOS ..."""
    for batch in _batched(documents, 256):
        bos = np.array([tokenizer.bos_id], dtype=np.int64)
        eos = np.array([tokenizer.eos_id], dtype=np.int64)
        pieces = []
        for ids in tokenizer.encode_batch(batch):
            if bos_per_document:
                pieces.append(bos)
            pieces.append(np.asarray(ids, dtype=np.int64))
            pieces.append(eos)
        yield np.concatenate(pieces)


@dataclass
class TokenFile:
    """A memory-mapped flat token stream and its manifest."""

    tokens: np.ndarray  # (n_tokens,) uint16 or uint32, memory-mapped
    manifest: dict
    path: Path


def token_file_key(corpus_fingerprint: str, tokenizer_fingerprint: str, bos_per_document: bool) -> str:
    raw = json.dumps([TOKEN_FILE_FORMAT, corpus_fingerprint, tokenizer_fingerprint, bos_per_document])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def write_token_file(path: Path, chunks: Iterable[np.ndarray], vocab_size: int, meta: dict) -> TokenFile:
    """Write a token stream to `path` (.bin) and `path`.json, both atomically; the manifest comes last."""
    dtype = np.uint16 if vocab_size <= 2**16 else np.uint32
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n_tokens = 0
    try:
        with tmp.open("wb") as f:
            for chunk in chunks:
                f.write(chunk.astype(dtype).tobytes())
                n_tokens += len(chunk)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    manifest = {
        "format": TOKEN_FILE_FORMAT,
        "dtype": np.dtype(dtype).name,
        "n_tokens": n_tokens,
        "vocab_size": vocab_size,
        **meta,
    }
    atomic_write_json(manifest_path(path), manifest)
    return read_token_file(path)


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_token_file(path: Path) -> TokenFile:
    """Open a token file; a missing manifest or a size mismatch is an error (the writer never leaves one)."""
    mpath = manifest_path(path)
    if not path.exists() or not mpath.exists():
        raise FileNotFoundError(f"token file {path} or its manifest {mpath.name} is missing")
    manifest = json.loads(mpath.read_text())
    dtype = np.dtype(manifest["dtype"])
    expected = manifest["n_tokens"] * dtype.itemsize
    if path.stat().st_size != expected:
        raise ValueError(
            f"token file {path} has {path.stat().st_size} bytes, its manifest says {expected}; "
            "delete it to rebuild"
        )
    # np.memmap cannot map an empty file
    empty = manifest["n_tokens"] == 0
    tokens = np.zeros(0, dtype=dtype) if empty else np.memmap(path, dtype=dtype, mode="r")
    return TokenFile(tokens=tokens, manifest=manifest, path=path)


@dataclass
class PackedSequences:
    """Non-overlapping sequences of length context + 1 cut from a token stream."""

    tokens: np.ndarray
    context: int
    bos_id: int | None = None  # set: the same BOS at position 0 of every sequence

    @property
    def stride(self) -> int:
        return self.context if self.bos_id is not None else self.context + 1

    def __len__(self) -> int:
        return len(self.tokens) // self.stride

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"sequence {index} out of range ({len(self)} sequences)")
        block = np.asarray(self.tokens[index * self.stride : (index + 1) * self.stride], dtype=np.int64)
        if self.bos_id is not None:
            block = np.concatenate([np.array([self.bos_id], dtype=np.int64), block])
        return block


@lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


@dataclass
class TrainOrder:
    """The infinite, deterministic sample order: epoch e visits the kept sequences in a seeded permutation."""

    kept: np.ndarray  # indices into the packed sequences (after data.fraction)
    seed: int

    def sequence_index(self, sample: int) -> int:
        epoch, offset = divmod(sample, len(self.kept))
        return int(self.kept[_permutation(len(self.kept), self.seed, epoch)[offset]])

    def epoch(self, sample: int) -> int:
        return sample // len(self.kept)


@dataclass
class TrainBatches:
    """Global batch `step` = samples [step * batch, (step + 1) * batch) of the order; each rank a slice."""

    sequences: PackedSequences
    order: TrainOrder
    interventions: PositionInterventions
    batch_size: int  # global, in sequences

    @classmethod
    def build(
        cls,
        sequences: PackedSequences,
        *,
        batch_size: int,
        seed: int,
        fraction: float = 1.0,
        interventions: PositionInterventions | None = None,
    ) -> TrainBatches:
        if len(sequences) == 0:
            raise ValueError(
                f"the training split has {len(sequences.tokens)} tokens, fewer than one sequence of "
                f"{sequences.stride}: use a bigger corpus or a smaller data.context"
            )
        kept = keep_fraction(len(sequences), fraction, seed)
        return cls(sequences, TrainOrder(kept, seed), interventions or PositionInterventions(), batch_size)

    def samples(self, step: int, rank: int = 0, world: int = 1) -> range:
        if self.batch_size % world:
            raise ValueError(f"train.batch_size {self.batch_size} is not divisible by the world size {world}")
        per_rank = self.batch_size // world
        start = step * self.batch_size + rank * per_rank
        return range(start, start + per_rank)

    def sequence(self, sample: int) -> np.ndarray:
        seq = self.sequences[self.order.sequence_index(sample)]
        return self.interventions.apply(seq, sample)

    def batch(self, step: int, rank: int = 0, world: int = 1) -> np.ndarray:
        """(batch_size / world, context + 1) int64 token ids for this rank at this step."""
        return np.stack([self.sequence(s) for s in self.samples(step, rank, world)])

    def state(self, step: int) -> dict:
        """The data-order state after `step` steps (recorded in checkpoints; resuming needs only the step)."""
        consumed = step * self.batch_size
        return {
            "consumed_samples": consumed,
            "epoch": self.order.epoch(consumed),
            "kept_sequences": len(self.order.kept),
            "available_sequences": len(self.sequences),
            "seed": self.order.seed,
        }
