"""Measurement inputs: `--input SPEC` to a (samples, length) tensor of token ids.

SPEC forms:
  text:FILE                               .txt (one document per line) or .jsonl (field "text")
  ids:FILE.jsonl                          token ids under "input_ids", used exactly as given (truncated)
  hf:DATASET[:CONFIG][:SPLIT][:COLUMN]    a Hugging Face dataset (hub id or local folder), streamed;
                                          split defaults to "train", column to "text"
  random[:SEED]                           ids drawn uniformly from the vocabulary (paper Table 1 "random")
  repeat[:TOKEN_ID]                       one id repeated T times; a random id per sample if none is given

--bos: auto (text: the tokenizer's own special tokens, as the paper's open-source evaluation does;
random/repeat/ids: none added), sequence (BOS first, added if missing), none (no special tokens added).
Texts shorter than the length are skipped and counted. A bad SPEC or a bad line of its file is a MeasureError
that names the file and line and says what is accepted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sinklab.measure.checks import (
    BOS_MODES,
    SPEC_FORMS,
    MeasureError,
    check_size,
    is_int,
    looks_like_path,
)

TEXT_ROW = '{"text": "..."}'
IDS_ROW = '{"input_ids": [non-negative int, ...]}'


@dataclass
class Inputs:
    ids: torch.Tensor  # (S, T) long
    skipped: int = 0  # documents shorter than the length
    requested: int = 0
    notes: list[str] = field(default_factory=list)
    # what position 1 holds: id, text, how it got there, how many samples share it (first_token_report)
    first_token: dict[str, Any] | None = None


def first_token_report(ids: torch.Tensor, tokenizer: Any, how: str) -> dict[str, Any]:
    """The first position of ids (S, T): its most common id, that id's text, `how` it got there (added by
    sinklab, by the tokenizer, or the document's own), the share of samples that have it and the number of
    distinct first ids."""
    first = ids[:, 0]
    values, counts = torch.unique(first, return_counts=True)
    top = int(values[int(counts.argmax())])
    text = None
    if tokenizer is not None:
        try:
            text = tokenizer.decode([top])
        except Exception:  # a tokenizer that cannot decode one id: the id alone is reported
            text = None
    special = tokenizer is not None and top in set(getattr(tokenizer, "all_special_ids", None) or ())
    if how == "tokenizer" and not special:
        how = "native"  # the tokenizer added no special token in front: the document's own first token
    return {
        "id": top,
        "text": text,
        "how": how,
        "special": bool(special),
        "share": float(counts.max()) / len(first),
        "distinct": len(values),
    }


def first_token_line(first: dict[str, Any]) -> str:
    """The summary's line about position 1."""
    how = {
        "added": "added by sinklab (bos=sequence)",
        "tokenizer": "added by the tokenizer (bos=auto)",
        "native": "the document's own first token, nothing added",
        "given": "as given in the ids",
        "random": "a random id (random input)",
    }.get(first["how"], first["how"])
    text = f" {first['text']!r}" if first.get("text") is not None else ""
    special = ", a special token" if first.get("special") else ""
    if first["distinct"] == 1:
        where = "in every sample"
    else:
        where = (
            f"in {first['share']:.0%} of samples ({first['distinct']} distinct first ids: position 1 differs)"
        )
    return f"first token: id {first['id']}{text}{special}, {how}, {where}"


def _spec_error(spec: str, why: str) -> MeasureError:
    return MeasureError(f"bad --input {spec!r}: {why}; accepted forms: {', '.join(SPEC_FORMS)}")


def check_spec(spec: str) -> None:
    """What can be checked of SPEC without the model: its form, numbers and that its file exists.

    Run before the model loads, so a typo costs nothing; the file's lines are checked as they are read.
    From Python SPEC may also be token ids (a tensor, array or list): their shape and values are checked."""
    if not isinstance(spec, str):
        from sinklab.measure.caller import token_ids

        token_ids(spec)
        return
    kind, _, rest = spec.partition(":")
    if kind == "random":
        if rest:
            _int(spec, rest, "SEED")
    elif kind == "repeat":
        if rest and _int(spec, rest, "TOKEN_ID") < 0:
            raise _spec_error(spec, "TOKEN_ID must be >= 0")
    elif kind in ("text", "ids"):
        if not rest:
            raise _spec_error(spec, "missing FILE")
        _input_file(text_file(rest)[0] if kind == "text" else Path(rest), kind)
    elif kind == "hf":
        parts = rest.split(":")
        if not parts[0] or len(parts) > 4:
            raise _spec_error(spec, "expected hf:DATASET[:CONFIG][:SPLIT][:COLUMN]")
        if looks_like_path(parts[0]) and not Path(parts[0]).expanduser().exists():
            raise FileNotFoundError(
                f"--input {spec!r}: dataset folder or file {parts[0]!r} does not exist; hf: takes a local "
                "dataset folder or data file (.jsonl, .json, .csv, .parquet, .txt) or a hub dataset id"
            )
    else:
        raise _spec_error(spec, f"unknown kind {kind!r}")


def _input_file(path: Path, kind: str) -> Path:
    accepted = (
        "text: takes a .txt file (one document per line) or a .jsonl file (one " + TEXT_ROW + " per line)"
        if kind == "text"
        else "ids: takes a .jsonl file with one " + IDS_ROW + " per line"
    )
    if not path.exists():
        raise FileNotFoundError(f"--input {kind}:{path}: the file does not exist; {accepted}")
    if not path.is_file():
        raise MeasureError(f"--input {kind}:{path} is a directory, not a file; {accepted}")
    return path


def _lines(path: Path, kind: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of the non-blank lines of a UTF-8 file; decoded line by line, so that a bad
    byte is reported with its line."""
    _input_file(path, kind)
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise MeasureError(
                    f"{path}:{n}: not UTF-8 text ({err.reason} at byte {err.start} of the line); "
                    f"{kind}: inputs are UTF-8 files"
                ) from None
            if line.strip():
                yield n, line.rstrip("\r\n")


def _json_line(path: Path, n: int, line: str, expected: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise MeasureError(f"{path}:{n}: not valid JSON ({err.msg}); expected {expected} per line") from None


def text_file(rest: str) -> tuple[Path, str]:
    """text:FILE or text:FILE.jsonl:FIELD -> (FILE, the JSON field holding each document: "text" default)."""
    head, sep, field_ = rest.rpartition(":")
    if sep and head.endswith(".jsonl") and field_ and "/" not in field_:
        return Path(head), field_
    return Path(rest), "text"


def _read_texts(path: Path, key: str = "text") -> Iterator[str]:
    if path.suffix != ".jsonl":
        for _, line in _lines(path, "text"):
            yield line
        return
    for n, line in _lines(path, "text"):
        row = _json_line(path, n, line, TEXT_ROW)
        if not isinstance(row, dict):
            raise MeasureError(f"{path}:{n}: expected an object like {TEXT_ROW}, got a {_json_type(row)}")
        if key not in row:
            keys = ", ".join(row) or "none"
            hint = f"; choose the field with text:{path}:FIELD" if key == "text" else ""
            raise MeasureError(f'{path}:{n}: no "{key}" field (keys: {keys}){hint}')
        if not isinstance(row[key], str):
            raise MeasureError(f'{path}:{n}: "{key}" must be a string, got a {_json_type(row[key])}')
        yield row[key]


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _hf_texts(rest: str) -> Iterator[str]:
    import datasets

    parts = rest.split(":")  # its shape was checked by check_spec
    name = parts[0]
    config = parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 and parts[2] else "train"
    column = parts[3] if len(parts) > 3 and parts[3] else "text"
    local = Path(name).expanduser()
    if local.is_file():  # a single local data file: let datasets pick the builder from the extension
        builder = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
        if local.suffix not in builder:
            raise _spec_error(
                "hf:" + rest, f"unsupported data file type {local.suffix!r} (accepted: {', '.join(builder)})"
            )
        ds = datasets.load_dataset(builder[local.suffix], data_files=str(local), split=split, streaming=True)
    else:
        try:
            ds = datasets.load_dataset(name, config, split=split, streaming=True)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"dataset {name!r} not found locally or on the hub: {err}") from err
    for row in ds:
        if column not in row:
            raise MeasureError(f"dataset {name!r} has no column {column!r}; columns: {', '.join(row)}")
        yield str(row[column])


def _encode(tokenizer: Any, text: str, bos: str) -> list[int]:
    if bos == "auto":
        return list(tokenizer(text)["input_ids"])
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return _with_bos(ids, tokenizer, bos)


def _bos_id(tokenizer: Any, bos_id: int | None) -> int:
    found = bos_id if bos_id is not None else getattr(tokenizer, "bos_token_id", None)
    if found is None:
        raise MeasureError(
            "--bos sequence needs a BOS token, but neither the tokenizer nor the model defines one; "
            "use --bos auto or none"
        )
    return int(found)


def _with_bos(ids: list[int], tokenizer: Any, bos: str, bos_id: int | None = None) -> list[int]:
    if bos != "sequence":
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
    draw_size: int | None = None,
    pack: bool = False,
) -> Inputs:
    """Token ids (samples, length) for SPEC; fewer samples (with a note) if the source runs short.

    vocab_size: rows of the model's input embedding, the bound every id is checked against. draw_size: the
    ids random/repeat draw from (default vocab_size); the tokenizer's ids where it has fewer, so no random
    id lands on an embedding row that padding added and training never saw."""
    if bos not in BOS_MODES:
        raise MeasureError(f"unknown --bos {bos!r}; accepted: {', '.join(BOS_MODES)}")
    check_size(length, samples)
    if not isinstance(spec, str):  # token ids from Python (sinklab.measure.caller.token_ids)
        return _given_ids(spec, length, samples, vocab_size)
    check_spec(spec)
    kind, _, rest = spec.partition(":")
    if pack and kind in ("random", "repeat"):
        raise MeasureError(f"--pack joins documents: it applies to text:, ids: and hf: inputs, not {kind}")
    rows: list[list[int]] = []
    skipped = 0
    notes: list[str] = []
    if kind in ("random", "repeat"):
        if vocab_size is None:
            raise ValueError(f"{kind} inputs need the vocabulary size")
        draw = min(draw_size or vocab_size, vocab_size)
        if kind == "random":
            seed = _int(spec, rest, "SEED") if rest else 0
            gen = torch.Generator().manual_seed(seed)
            body = torch.randint(0, draw, (samples, length), generator=gen)
        else:
            if rest:
                token = _int(spec, rest, "TOKEN_ID")
                if not 0 <= token < vocab_size:
                    raise _spec_error(
                        spec, f"token id {token} is outside the model's vocabulary [0, {vocab_size})"
                    )
                body = torch.full((samples, length), token)
            else:
                gen = torch.Generator().manual_seed(0)
                body = torch.randint(0, draw, (samples, 1), generator=gen).expand(samples, length)
        if bos == "sequence":
            first = _bos_id(tokenizer, bos_id)
            body = body.clone()
            body[:, 0] = first  # the first of the T positions becomes BOS, the length stays T
        how = "added" if bos == "sequence" else ("random" if kind == "random" else "native")
        body = body.long().contiguous()
        return Inputs(ids=body, requested=samples, first_token=first_token_report(body, tokenizer, how))
    if kind == "text":
        if tokenizer is None:
            raise _no_tokenizer(spec)
        path, key = text_file(rest)
        sources: Iterator[list[int]] = (_encode(tokenizer, t, bos) for t in _read_texts(path, key))
    elif kind == "hf":
        if tokenizer is None:
            raise _no_tokenizer(spec)
        sources = (_encode(tokenizer, t, bos) for t in _hf_texts(rest))
    else:  # ids (check_spec accepted nothing else)
        sources = (_with_bos(ids, tokenizer, bos, bos_id) for ids in _read_ids(Path(rest), vocab_size))
    seen = 0
    if pack:
        sources = _packed(sources, length, tokenizer, bos, bos_id)
        notes.append(
            f"packed: documents joined{' with the separator' if _separator(tokenizer) is not None else ''} "
            f"and cut into {length}-token windows" + (", each starting with BOS" if bos == "sequence" else "")
        )
    for ids in sources:
        seen += 1
        if len(ids) < length:
            skipped += 1
            continue
        rows.append(ids[:length])
        if len(rows) == samples:
            break
    if seen == 0:
        raise MeasureError(f"--input {spec!r} holds no documents (empty file or dataset)")
    if not rows:
        per_line = (
            "; text: reads a .txt file as one document per line (a hard-wrapped file is many short "
            "documents), a .jsonl file as one object per line"
            if kind == "text"
            else ""
        )
        raise MeasureError(
            f"--input {spec!r}: none of its {seen} documents has {length} tokens (all skipped){per_line}; "
            "lower --length, use longer texts, or --pack (join the documents and cut "
            f"{length}-token windows, as the paper trains)"
        )
    if skipped:
        notes.append(f"skipped {skipped} document(s) shorter than {length} tokens")
    if len(rows) < samples:
        notes.append(f"only {len(rows)} usable sample(s) of the {samples} asked for")
    ids_t = torch.tensor(rows, dtype=torch.long)
    if vocab_size is not None and int(ids_t.max()) >= vocab_size:
        # ids: rows were checked line by line; here a tokenizer (or BOS) gave ids the model does not have.
        raise MeasureError(
            f"--input {spec!r}: the tokenizer produced id {int(ids_t.max())} but the model's input embedding "
            f"has {vocab_size} rows (ids 0..{vocab_size - 1}): does --tokenizer belong to this model?"
        )
    how = {"sequence": "added", "none": "native"}.get(bos, "tokenizer" if kind in ("text", "hf") else "given")
    first = first_token_report(ids_t, tokenizer, how)
    if first["distinct"] > 1:
        text = f" {first['text']!r}" if first.get("text") is not None else ""
        notes.append(
            f"position 1 differs across samples: {first['distinct']} distinct first ids; the most common, "
            f"id {first['id']}{text}, starts {first['share']:.0%} of them"
        )
    return Inputs(ids=ids_t, skipped=skipped, requested=samples, notes=notes, first_token=first)


def _separator(tokenizer: Any) -> int | None:
    """The id put between packed documents: the tokenizer's EOS (else its separator token), if any."""
    for name in ("eos_token_id", "sep_token_id"):
        value = getattr(tokenizer, name, None) if tokenizer is not None else None
        if isinstance(value, int):
            return value
    return None


def _packed(
    sources: Iterator[list[int]], length: int, tokenizer: Any, bos: str, bos_id: int | None
) -> Iterator[list[int]]:
    """The paper's packing: documents joined with the tokenizer's separator and cut into windows of
    `length` tokens (a window may start mid-document); with bos=sequence each window is BOS + length - 1
    tokens. A last window shorter than `length` is dropped."""
    sep = _separator(tokenizer)
    first = _bos_id(tokenizer, bos_id) if bos == "sequence" else None
    body = length - 1 if first is not None else length
    buffer: list[int] = []
    for ids in sources:
        if first is not None and ids and ids[0] == first:
            ids = ids[1:]  # sequence mode put BOS in front of the document: packing puts it per window
        buffer.extend(ids)
        if sep is not None and (not ids or ids[-1] != sep):
            buffer.append(sep)
        while len(buffer) >= body:
            window, buffer = buffer[:body], buffer[body:]
            yield [first, *window] if first is not None else window


def source_label(spec: Any) -> str:
    """metrics.json's `input`: the SPEC, or "token ids (S, T)" for ids given from Python."""
    if isinstance(spec, str):
        return spec
    from sinklab.measure.caller import token_ids

    return f"token ids {tuple(token_ids(spec).shape)} from Python"


def _given_ids(spec: Any, length: int, samples: int, vocab_size: int | None) -> Inputs:
    """Token ids from Python, used as given (no BOS added): the first `samples` rows, the first `length`
    tokens of each."""
    from sinklab.measure.caller import token_ids

    ids = token_ids(spec)
    n, t = ids.shape
    if t < length:
        raise MeasureError(
            f"--length {length} is longer than the token ids given ({n} x {t}): use --length {t} or less"
        )
    if vocab_size is not None and int(ids.max()) >= vocab_size:
        raise MeasureError(
            f"token id {int(ids.max())} is outside the model's vocabulary: its input embedding has "
            f"{vocab_size} rows (ids 0..{vocab_size - 1})"
        )
    notes = [] if n >= samples else [f"only {n} sample(s) given of the {samples} asked for"]
    kept = ids[:samples, :length].contiguous()
    return Inputs(
        ids=kept, requested=samples, notes=notes, first_token=first_token_report(kept, None, "given")
    )


def _no_tokenizer(spec: str) -> MeasureError:
    return MeasureError(
        f"--input {spec!r} needs a tokenizer and the model has none: pass --tokenizer (a folder or hub id), "
        "or use ids:/random/repeat input"
    )


def _int(spec: str, value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _spec_error(spec, f"{what} must be an integer, got {value!r}") from None


def _read_ids(path: Path, vocab_size: int | None = None) -> Iterator[list[int]]:
    """The rows of an ids: file, each checked: integers in [0, vocab_size)."""
    bound = f"0..{vocab_size - 1}, the model's input embedding rows" if vocab_size else "non-negative"
    for n, line in _lines(path, "ids"):
        row = _json_line(path, n, line, IDS_ROW)
        ids = row.get("input_ids") if isinstance(row, dict) else None
        if not isinstance(ids, list):
            got = f"keys {', '.join(row) or 'none'}" if isinstance(row, dict) else f"a {_json_type(row)}"
            raise MeasureError(f"{path}:{n}: expected {IDS_ROW}, got {got}")
        bad = next((i for i in ids if not is_int(i)), None)
        if bad is not None or any(i < 0 for i in ids):
            what = f"non-integer id {json.dumps(bad)}" if bad is not None else f"negative id {min(ids)}"
            raise MeasureError(f"{path}:{n}: {what}; token ids are integers ({bound})")
        if vocab_size is not None and ids and max(ids) >= vocab_size:
            raise MeasureError(
                f"{path}:{n}: token id {max(ids)} is outside the model's vocabulary: its input embedding has "
                f"{vocab_size} rows (ids 0..{vocab_size - 1})"
            )
        yield ids
