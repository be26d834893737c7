"""Measurement inputs: `--input SPEC` to a (samples, length) tensor of token ids.

SPEC forms:
  text:FILE                               .txt (one document per line) or .jsonl (field "text")
  ids:FILE.jsonl                          token ids under "input_ids", used exactly as given (truncated)
  hf:DATASET[:CONFIG][:SPLIT][:COLUMN]    a Hugging Face dataset (hub id or local folder), streamed;
                                          split defaults to "train", column to "text"
  random[:SEED]                           ids drawn uniformly from the vocabulary (paper Table 1 "random")
  repeat[:TOKEN_ID]                       one id repeated T times; a random id per sample if none is given

--bos: auto (text: the tokenizer's own special tokens, as the paper's open-source evaluation does;
random/repeat/ids: none added), always (BOS first, added if missing), never (no special tokens added).
Texts shorter than the length are skipped and counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

SPEC_FORMS = (
    "text:FILE",
    "ids:FILE.jsonl",
    "hf:DATASET[:CONFIG][:SPLIT][:COLUMN]",
    "random[:SEED]",
    "repeat[:TOKEN_ID]",
)
BOS_MODES = ("auto", "always", "never")


@dataclass
class Inputs:
    ids: torch.Tensor  # (S, T) long
    skipped: int = 0  # documents shorter than the length
    requested: int = 0
    notes: list[str] = field(default_factory=list)


def _spec_error(spec: str, why: str) -> ValueError:
    return ValueError(f"bad --input {spec!r}: {why}; accepted forms: {', '.join(SPEC_FORMS)}")


def _read_texts(path: Path) -> Iterator[str]:
    if not path.exists():
        raise FileNotFoundError(f"input file {str(path)!r} does not exist")
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    row = json.loads(line)
                    if "text" not in row:
                        raise ValueError(f'{path}:{n}: no "text" field (keys: {", ".join(row)})')
                    yield str(row["text"])
    else:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield line.rstrip("\n")


def _hf_texts(rest: str) -> Iterator[str]:
    import datasets

    parts = rest.split(":")
    if not parts[0] or len(parts) > 4:
        raise _spec_error("hf:" + rest, "expected hf:DATASET[:CONFIG][:SPLIT][:COLUMN]")
    name = parts[0]
    config = parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 and parts[2] else "train"
    column = parts[3] if len(parts) > 3 and parts[3] else "text"
    local = Path(name).expanduser()
    if local.is_file():  # a single local data file: let datasets pick the builder from the extension
        builder = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
        if local.suffix not in builder:
            raise _spec_error("hf:" + rest, f"unsupported data file type {local.suffix!r}")
        ds = datasets.load_dataset(builder[local.suffix], data_files=str(local), split=split, streaming=True)
    else:
        try:
            ds = datasets.load_dataset(name, config, split=split, streaming=True)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"dataset {name!r} not found locally or on the hub: {err}") from err
    for row in ds:
        if column not in row:
            raise ValueError(f"dataset {name!r} has no column {column!r}; columns: {', '.join(row)}")
        yield str(row[column])


def _encode(tokenizer: Any, text: str, bos: str) -> list[int]:
    if bos == "auto":
        return list(tokenizer(text)["input_ids"])
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return _with_bos(ids, tokenizer, bos)


def _bos_id(tokenizer: Any, bos_id: int | None) -> int:
    found = bos_id if bos_id is not None else getattr(tokenizer, "bos_token_id", None)
    if found is None:
        raise ValueError(
            "--bos always needs a BOS token, but neither the tokenizer nor the model defines one"
        )
    return int(found)


def _with_bos(ids: list[int], tokenizer: Any, bos: str, bos_id: int | None = None) -> list[int]:
    if bos != "always":
        return ids
    first = _bos_id(tokenizer, bos_id)
    return ids if ids and ids[0] == first else [first, *ids]


def load_inputs(
    spec: str,
    *,
    tokenizer: Any | None,
    length: int = 64,
    samples: int = 100,
    bos: str = "auto",
    vocab_size: int | None = None,
    bos_id: int | None = None,
) -> Inputs:
    """Token ids (samples, length) for SPEC; fewer samples (with a note) if the source runs short."""
    if bos not in BOS_MODES:
        raise ValueError(f"unknown --bos {bos!r}; accepted: {', '.join(BOS_MODES)}")
    if length < 1 or samples < 1:
        raise ValueError(f"--length and --samples must be >= 1 (got {length}, {samples})")
    kind, _, rest = spec.partition(":")
    rows: list[list[int]] = []
    skipped = 0
    notes: list[str] = []
    if kind in ("random", "repeat"):
        if vocab_size is None:
            raise ValueError(f"{kind} inputs need the vocabulary size")
        if kind == "random":
            seed = _int(spec, rest, "SEED") if rest else 0
            gen = torch.Generator().manual_seed(seed)
            body = torch.randint(0, vocab_size, (samples, length), generator=gen)
        else:
            if rest:
                token = _int(spec, rest, "TOKEN_ID")
                if not 0 <= token < vocab_size:
                    raise _spec_error(spec, f"token id {token} is outside the vocabulary [0, {vocab_size})")
                body = torch.full((samples, length), token)
            else:
                gen = torch.Generator().manual_seed(0)
                body = torch.randint(0, vocab_size, (samples, 1), generator=gen).expand(samples, length)
        if bos == "always":
            first = _bos_id(tokenizer, bos_id)
            body = body.clone()
            body[:, 0] = first  # the first of the T positions becomes BOS, the length stays T
        return Inputs(ids=body.long().contiguous(), requested=samples)
    if kind == "text":
        if not rest:
            raise _spec_error(spec, "missing FILE")
        if tokenizer is None:
            raise ValueError("text inputs need a tokenizer (pass --tokenizer, or use ids:/random/repeat)")
        sources: Iterator[list[int]] = (_encode(tokenizer, t, bos) for t in _read_texts(Path(rest)))
    elif kind == "hf":
        if tokenizer is None:
            raise ValueError("hf: inputs need a tokenizer (pass --tokenizer, or use ids:/random/repeat)")
        sources = (_encode(tokenizer, t, bos) for t in _hf_texts(rest))
    elif kind == "ids":
        if not rest:
            raise _spec_error(spec, "missing FILE")
        sources = (_with_bos(ids, tokenizer, bos, bos_id) for ids in _read_ids(Path(rest)))
    else:
        raise _spec_error(spec, f"unknown kind {kind!r}")
    seen = 0
    for ids in sources:
        seen += 1
        if len(ids) < length:
            skipped += 1
            continue
        rows.append(ids[:length])
        if len(rows) == samples:
            break
    if seen == 0:
        raise ValueError(f"--input {spec!r} holds no documents (empty file or dataset)")
    if not rows:
        raise ValueError(
            f"--input {spec!r}: none of its {seen} documents has {length} tokens (all skipped); "
            "lower --length or use longer texts"
        )
    if skipped:
        notes.append(f"skipped {skipped} document(s) shorter than {length} tokens")
    if len(rows) < samples:
        notes.append(f"only {len(rows)} usable sample(s) of the {samples} asked for")
    ids_t = torch.tensor(rows, dtype=torch.long)
    if vocab_size is not None and int(ids_t.max()) >= vocab_size:
        raise ValueError(f"input ids go up to {int(ids_t.max())} but the model's vocabulary has {vocab_size}")
    return Inputs(ids=ids_t, skipped=skipped, requested=samples, notes=notes)


def _int(spec: str, value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _spec_error(spec, f"{what} must be an integer, got {value!r}") from None


def _read_ids(path: Path) -> Iterator[list[int]]:
    if not path.exists():
        raise FileNotFoundError(f"input file {str(path)!r} does not exist")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            ids = row.get("input_ids") if isinstance(row, dict) else None
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise ValueError(f'{path}:{n}: expected {{"input_ids": [int, ...]}}')
            yield ids
