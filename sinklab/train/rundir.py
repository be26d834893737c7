"""The run directory as a unit: one writer at a time (a lock), its saved config, leftovers of a crash.

The lock is an `fcntl.flock` on DIR/.lock holding the writer's pid: the kernel releases it when the
process ends, however it ends (kill -9 included), so a stale lock never needs removing by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sinklab.config import to_dict
from sinklab.errors import SinklabError

LOCK_NAME = ".lock"
CONFIG_NAME = "config.json"
RUN_FORMAT = "sinklab-run"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold DIR/.lock (creating DIR) for the block; a second holder is refused, naming the first's pid."""
    import fcntl  # POSIX only, and only needed by the trainer

    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise SinklabError(
                f"{run_dir} is locked by pid {holder}: another `sinklab train` is writing this run; wait for "
                "it to finish, stop it, or pick another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            if created and [p.name for p in run_dir.iterdir()] == [LOCK_NAME]:
                # nothing was written (an error before training started): leave no empty run behind
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    run_dir.rmdir()
    finally:
        os.close(fd)  # releases the lock


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """DIR/config.json as a dict; a corrupt or foreign file is an error naming it."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {CONFIG_NAME}, so this is not a sinklab run directory")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SinklabError(
            f"{path} is corrupt ({err}); the run cannot be continued without it: delete {run_dir} (or pick "
            "another --out) and train again"
        ) from None
    if not isinstance(saved, dict) or saved.get("format", RUN_FORMAT) != RUN_FORMAT:
        raise SinklabError(
            f'{path} is not a sinklab run config (expected an object with "format": '
            f'"{RUN_FORMAT}" and model/data/train sections)'
        )
    return saved


def run_config_of(run_dir: Path, saved: dict[str, Any] | None = None):
    """The RunConfig saved in DIR/config.json; an invalid one is an error naming the file."""
    from sinklab.train.config import run_config_from_dict

    saved = read_run_config(run_dir) if saved is None else saved
    try:
        return run_config_from_dict(saved)
    except ValueError as err:
        raise SinklabError(f"{Path(run_dir) / CONFIG_NAME}: {err}") from None


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def config_differences(saved: dict[str, Any], cfg: Any) -> list[str]:
    """`key: saved -> new` for every setting in which a run's config.json differs from `cfg` (a RunConfig).

    Settings that training fills in from the data (RESOLVED_AT_TRAINING) are not differences."""
    from sinklab.train.config import RESOLVED_AT_TRAINING, RUN_SECTIONS

    new = json.loads(json.dumps(to_dict(cfg)))  # tuples as JSON lists, as in the saved file
    old = {k: v for k, v in saved.items() if k in RUN_SECTIONS}
    return dict_differences(old, new, ignore=RESOLVED_AT_TRAINING)


def dict_differences(old: dict[str, Any], new: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """`dotted.key: old -> new` for every leaf in which two nested dicts differ."""
    a, b = _flatten(old), _flatten(new)
    absent = object()

    def show(value: Any) -> str:
        return "(absent)" if value is absent else repr(value)

    return [
        f"{key}: {show(a.get(key, absent))} -> {show(b.get(key, absent))}"
        for key in sorted(set(a) | set(b))
        if a.get(key, absent) != b.get(key, absent) and key not in ignore
    ]


def remove_leftovers(run_dir: Path) -> None:
    """Temporary files and folders of a writer that was killed (call only while holding the lock)."""
    run_dir = Path(run_dir)
    for folder in (run_dir, run_dir / "model", run_dir / "checkpoints"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            name = entry.name
            stale = (name.startswith(".") and name.endswith(".tmp")) or name.startswith((".tmp_", ".old_"))
            if stale or (folder == run_dir and name == "tokenizer.tmp"):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
