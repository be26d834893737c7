"""Checks of `sinklab measure`'s options and --out, run before the model loads, so no long work is lost."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sinklab.errors import SinklabError

# What the options accept, kept here (no torch import) so that `sinklab measure --help` starts at once.
SPEC_FORMS = (
    "text:FILE",
    "text:FILE.jsonl:FIELD",
    "ids:FILE.jsonl",
    "hf:DATASET[:CONFIG][:SPLIT][:COLUMN]",
    "random[:SEED]",
    "repeat[:TOKEN_ID]",
)
# BOS of measured text: auto (the tokenizer's own special tokens), sequence (every sample starts with BOS,
# added if missing: data.bos's name for the same thing), none (no special tokens added).
BOS_MODES = ("auto", "sequence", "none")
RENAMED_BOS = {"always": "sequence", "never": "none"}  # the names before 0.2; an error says the new one
DEFAULT_EPS = 0.3  # the paper's ε
EPS_ACCEPTED = "accepted: numbers in (0, 1), e.g. 0.3 (a head counts as a sink when its α_k > ε)"


class MeasureError(SinklabError, ValueError):
    """A bad option, input or model file. A ValueError too, so callers that caught ValueError still do."""


def looks_like_path(name: str) -> bool:
    """A hub id is NAME or ORG/NAME; anything else that does not exist locally is a missing path (and is
    never looked up on the hub, which offline would cost a minute of retries)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_count(option: str, value: Any, minimum: int = 1, what: str = "") -> None:
    """An integer option with a lower bound; `what` says what it counts, for the message."""
    if not is_int(value) or value < minimum:
        raise MeasureError(f"{option} must be an integer >= {minimum}{what}, got {value!r}")


def check_eps(eps: float | Sequence[float]) -> list[float]:
    """The thresholds as floats in (0, 1), the first being the headline; nan, 0, 1 and repeats are errors."""
    values = [eps] if isinstance(eps, int | float) else list(eps)
    if not values:
        raise MeasureError(f"--eps needs at least one threshold; {EPS_ACCEPTED}")
    checked: list[float] = []
    for e in values:
        try:
            v = float(e)
        except (TypeError, ValueError):
            raise MeasureError(f"--eps {e!r} is not a number; {EPS_ACCEPTED}") from None
        if not 0.0 < v < 1.0:  # nan fails both comparisons
            raise MeasureError(f"--eps {e!r} is outside (0, 1); {EPS_ACCEPTED}")
        checked.append(v)
    keys = [f"{v:g}" for v in checked]  # how metrics.json names each threshold
    if len(set(keys)) != len(keys):
        raise MeasureError(f"--eps lists a threshold twice ({' '.join(keys)}); give each once")
    return checked


def has_sinklab_config(path: Path) -> bool:
    """A sinklab model folder (config.json with "format": "sinklab"), even a broken one."""
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("format") == "sinklab"
    except (json.JSONDecodeError, AttributeError, OSError, UnicodeDecodeError):
        return False


def sinklab_run_kind(path: Path) -> str | None:
    """What `sinklab train` wrote at `path` (a run, or a model / checkpoint folder of one), or None."""
    if (path / "config.json").is_file() and (path / "log.jsonl").is_file():
        return "a sinklab training run (config.json + log.jsonl)"
    for sub in ("model", "checkpoints"):
        if (path / sub).is_dir():
            return f"a sinklab training run (it holds {sub}/)"
    if has_sinklab_config(path):
        return "a sinklab model or checkpoint folder"
    return None


def prepare_out(out: Path) -> Path | None:
    """Check --out before any long work: a folder (created if missing) that can be written and is not
    what `sinklab train` wrote. Returns the topmost folder this call created (None if it existed), so
    that a failed measurement can remove it again with `remove_created`."""
    if out.exists() and not out.is_dir():
        raise MeasureError(f"--out {out} is an existing file; --out takes a folder (created if missing)")
    kind = sinklab_run_kind(out) if out.is_dir() else None
    if kind is not None:
        raise MeasureError(
            f"--out {out} is {kind}: sinklab measure never writes where sinklab train did (the run's own "
            f"metrics.json would be overwritten). Choose a different --out, e.g. {out}-measure"
        )
    created = next((p for p in [*reversed(out.parents), out] if not p.exists()), None)
    try:
        out.mkdir(parents=True, exist_ok=True)
        # mkdir succeeds on an existing read-only folder: only writing a file shows that it is writable.
        fd, probe = tempfile.mkstemp(prefix=".sinklab-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        remove_created(created, out)
        raise MeasureError(
            f"--out {out} cannot be written ({err.strerror or err}); choose a folder you can write to"
        ) from None
    return created


def remove_created(top: Path | None, out: Path) -> None:
    """Remove the folders prepare_out created (from out up to top) where they are still empty."""
    if top is None:
        return
    path = out
    while True:
        with contextlib.suppress(OSError):
            path.rmdir()  # fails (and keeps the folder) when something is in it
        if path == top or path == path.parent:
            return
        path = path.parent


@contextlib.contextmanager
def into_out(out: str | Path | None) -> Iterator[Path | None]:
    """--out as a folder to write into (None: no --out): checked (and created) before any long work, and
    removed again (if still empty) when the work inside fails or is interrupted."""
    folder = Path(out).expanduser() if out is not None else None
    created = prepare_out(folder) if folder is not None else None
    try:
        yield folder
    except BaseException:  # Ctrl-C included: an --out made for this run and still empty goes again
        if folder is not None:
            remove_created(created, folder)
        raise


def check_size(length: int, samples: int) -> None:
    """--length and --samples: the metric compares the first token with the rest, so T >= 2."""
    check_count("--length", length, 2, " (tokens per sample; the metric compares the first with the rest)")
    check_count("--samples", samples, 1)
