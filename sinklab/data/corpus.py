"""Text corpora: the embedded default (the Python standard library), local files, Hugging Face datasets.

Every corpus yields plain-text documents for a split ("train" or "validation") and has a fingerprint
that the run records, so a token cache or a tokenizer is never reused for different text.
The split is a hash of each document's key (the file path for the standard library), so it is stable
across machines, independent of the order files are found in, and documents never leak between splits.
"""

from __future__ import annotations

import hashlib
import json
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "validation")
LOCAL_SUFFIXES = (".txt", ".jsonl", ".parquet")


def split_of(key: str, val_fraction: float) -> str:
    """'validation' for a stable `val_fraction` share of keys, else 'train' (a hash, not a random draw)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64
    return "validation" if unit < val_fraction else "train"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; accepted: {', '.join(SPLITS)}")


@dataclass
class Corpus:
    """Base class: subclasses yield (key, text) pairs in a fixed order."""

    spec: str
    val_fraction: float = 0.02
    max_documents: int | None = None  # per split, for quick runs and tests

    def _items(self) -> Iterator[tuple[str, str]]:
        raise NotImplementedError

    def documents(self, split: str) -> Iterator[str]:
        _check_split(split)
        count = 0
        for key, text in self._items():
            if self.max_documents is not None and count >= self.max_documents:
                return
            if text and split_of(key, self.val_fraction) == split:
                count += 1
                yield text

    def fingerprint(self) -> str:
        """A hash that changes whenever the text (or the split rule) could change."""
        h = hashlib.sha256()
        h.update(json.dumps([self.spec, self.val_fraction, self.max_documents]).encode())
        for key, text in self._items():
            h.update(key.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
            h.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
        return h.hexdigest()[:16]


@dataclass
class StdlibCorpus(Corpus):
    """The .py files of the running interpreter's standard library (site-packages excluded)."""

    root: Path | None = None

    def files(self) -> list[Path]:
        root = self.root or Path(sysconfig.get_paths()["stdlib"])
        found = [
            p
            for p in root.rglob("*.py")
            if not ({"site-packages", "dist-packages", "__pycache__"} & set(p.relative_to(root).parts))
        ]
        # Keys are paths relative to the stdlib root, so the split is the same on every machine.
        return sorted(found, key=lambda p: p.relative_to(root).as_posix())

    def _items(self) -> Iterator[tuple[str, str]]:
        root = self.root or Path(sysconfig.get_paths()["stdlib"])
        for path in self.files():
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # a handful of test fixtures are deliberately not UTF-8
            yield path.relative_to(root).as_posix(), text


def _read_local(path: Path, column: str) -> Iterator[tuple[str, str]]:
    """Documents of one local file: .txt one per non-empty line, .jsonl / .parquet the `column` field."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        with path.open(encoding="utf-8") as f:
            for i, line in enumerate(f):
                line = line.rstrip("\n")
                if line.strip():
                    yield f"{path.name}:{i}", line
    elif suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{i + 1}: not valid JSON ({err.msg})") from None
                if not isinstance(row, dict) or column not in row:
                    raise ValueError(f"{path}:{i + 1}: expected an object with a {column!r} field")
                yield f"{path.name}:{i}", str(row[column])
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=[column])
        for i, text in enumerate(table.column(column).to_pylist()):
            yield f"{path.name}:{i}", "" if text is None else str(text)
    else:
        raise ValueError(f"{path}: unsupported file type; accepted: {', '.join(LOCAL_SUFFIXES)}")


@dataclass
class FileCorpus(Corpus):
    """A local file, or every .txt/.jsonl/.parquet file under a folder (sorted)."""

    path: Path = Path()
    column: str = "text"

    def files(self) -> list[Path]:
        if self.path.is_dir():
            found = sorted(p for p in self.path.rglob("*") if p.suffix.lower() in LOCAL_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"no {'/'.join(LOCAL_SUFFIXES)} files under {self.path}")
            return found
        if not self.path.exists():
            raise FileNotFoundError(f"corpus file not found: {self.path}")
        return [self.path]

    def _items(self) -> Iterator[tuple[str, str]]:
        base = self.path if self.path.is_dir() else self.path.parent
        for file in self.files():
            rel = file.relative_to(base).as_posix()
            for key, text in _read_local(file, self.column):
                yield f"{rel}:{key.rsplit(':', 1)[1]}", text


@dataclass
class HFCorpus(Corpus):
    """A Hugging Face dataset streamed by name (or a local dataset folder), e.g. FineWeb-Edu, RegMix."""

    name: str = ""
    config: str | None = None
    split: str = "train"
    column: str = "text"

    def _items(self) -> Iterator[tuple[str, str]]:
        from datasets import load_dataset

        # Streaming: real-scale corpora are never downloaded whole; max_documents bounds a run.
        stream = load_dataset(self.name, self.config, split=self.split, streaming=True)
        for i, row in enumerate(stream):
            if self.column not in row:
                raise ValueError(
                    f"dataset {self.name!r} has no column {self.column!r}; columns: {', '.join(row)}"
                )
            yield f"{i}", str(row[self.column] or "")

    def fingerprint(self) -> str:
        # Hashing a streamed dataset would mean reading all of it: the spec and limits stand in for it.
        h = hashlib.sha256(
            json.dumps(
                ["hf", self.name, self.config, self.split, self.column, self.val_fraction, self.max_documents]
            ).encode()
        )
        return h.hexdigest()[:16]


CORPUS_KINDS = ("stdlib", "PATH (.txt/.jsonl/.parquet file or folder)", "hf:NAME[:CONFIG][:SPLIT][:COLUMN]")


def load_corpus(spec: str, *, val_fraction: float = 0.02, max_documents: int | None = None) -> Corpus:
    """Parse a corpus spec: `stdlib`, a local path, or `hf:NAME[:CONFIG][:SPLIT][:COLUMN]`."""
    if spec == "stdlib":
        return StdlibCorpus(spec, val_fraction, max_documents)
    if spec.startswith("hf:"):
        parts = spec[3:].split(":")
        if not parts[0] or len(parts) > 4:
            raise ValueError(f"bad corpus spec {spec!r}; expected hf:NAME[:CONFIG][:SPLIT][:COLUMN]")
        parts += [""] * (4 - len(parts))
        name, config, split, column = parts
        return HFCorpus(
            spec,
            val_fraction,
            max_documents,
            name=name,
            config=config or None,
            split=split or "train",
            column=column or "text",
        )
    path = Path(spec).expanduser()
    if path.exists():
        column = "text"
        return FileCorpus(spec, val_fraction, max_documents, path=path, column=column)
    raise ValueError(
        f"corpus {spec!r} is not a known kind or an existing path; accepted: {'; '.join(CORPUS_KINDS)}"
    )
