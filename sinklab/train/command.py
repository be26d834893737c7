"""`sinklab train`: pre-train a small LM and track the sink as it emerges.

sinklab train [--preset NAME] [--config FILE] [--set key=value ...] --out DIR
sinklab train --resume DIR [--set train.steps=N ...]

Running the same command again after an interruption (Ctrl-C, SIGTERM, kill -9, a full disk) continues
the run: `--out DIR` on a run with the same settings resumes it from its last checkpoint (or restarts
it when it has none), and so does `--resume DIR`. One trainer at a time holds DIR (DIR/.lock).
SIGTERM is handled as Ctrl-C: temporary files are removed and the exit status is 130.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sinklab.config import add_set_argument, apply_overrides, to_dict
from sinklab.errors import SinklabError
from sinklab.io import sigterm_as_interrupt
from sinklab.train.config import RESUME_KEYS

__all__ = ["RESUME_KEYS", "add_arguments", "resolve_config", "resume_target", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sinklab.train.presets import run_preset_names

    parser.add_argument(
        "--preset", default=None, help=f"run preset: {', '.join(run_preset_names())} (default tiny)"
    )
    parser.add_argument(
        "--config", type=Path, help="JSON file with model/data/train sections, over the preset"
    )
    add_set_argument(
        parser,
        "override config keys, e.g. train.steps=200 model.attention.kernel=sigmoid "
        "(several after one --set, or --set repeated)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="run directory to create; if it holds a run with the same settings, that run is continued",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        help="continue the run in this directory from its last checkpoint (from step 0 if it has none)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def resolve_config(preset: str | None, config_file: Path | None, overrides: list[str]):
    """Preset, then the config file on top, then --set; every step strictly validated."""
    from sinklab.train.config import RUN_SECTIONS, run_config_from_dict
    from sinklab.train.presets import get_run_preset

    cfg = get_run_preset(preset or "tiny")
    if config_file is not None:
        try:
            update = json.loads(Path(config_file).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"--config {config_file}: not valid JSON ({err})") from None
        if not isinstance(update, dict):
            raise ValueError(
                f"--config {config_file}: expected a JSON object with sections {', '.join(RUN_SECTIONS)}, "
                f"got a JSON {type(update).__name__}"
            )
        try:
            cfg = run_config_from_dict(_merge(to_dict(cfg), update))
        except ValueError as err:
            raise ValueError(f"--config {config_file}: {err}") from None
    return apply_overrides(cfg, overrides)


def resume_target(path: Path) -> tuple[Path, Path | None]:
    """(run dir, checkpoint dir or None when the run has none yet) for --resume given a run dir or one of
    its checkpoint folders."""
    from sinklab.train.checkpoint import STEP_PREFIX, list_checkpoints

    path = Path(path)
    if path.name.startswith(STEP_PREFIX) and path.parent.name == "checkpoints":
        if not path.is_dir():
            raise FileNotFoundError(f"--resume {path}: no such checkpoint")
        return path.parent.parent, path
    if not path.is_dir():
        raise FileNotFoundError(f"--resume {path}: no such directory (give a run directory of sinklab train)")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--resume {path}: no config.json, so this is not a sinklab run directory")
    found = list_checkpoints(path)
    return path, (found[-1] if found else None)


def _is_main_process() -> bool:
    # Under torchrun every rank runs this command; only rank 0 writes, so only it takes the lock.
    return os.environ.get("RANK", "0") == "0"


def _say(message: str) -> None:
    if _is_main_process():
        print(f"sinklab train: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    with sigterm_as_interrupt():
        if args.resume is not None:
            return _run_resume(args)
        return _run_out(args)


def _run_resume(args: argparse.Namespace) -> int:
    from sinklab.train.rundir import read_run_config, run_config_of

    if args.preset or args.config or args.out:
        raise ValueError("--resume takes the run's own config; drop --preset/--config/--out")
    run_dir, _ = resume_target(args.resume)
    bad = [o for o in args.overrides if o.split("=", 1)[0].strip() not in RESUME_KEYS]
    if bad:
        raise ValueError(f"cannot change {', '.join(bad)} when resuming; accepted: {', '.join(RESUME_KEYS)}")
    saved = read_run_config(run_dir)
    cfg = apply_overrides(run_config_of(run_dir, saved), args.overrides)
    if args.print_config:
        print(json.dumps(to_dict(cfg), indent=2))
        return 0
    with _locked(run_dir):
        run_dir, checkpoint = resume_target(args.resume)  # again: the lock's last holder may have written one
        if checkpoint is None:
            _say(f"{run_dir} has no checkpoint yet: training it from step 0 with its config.json")
        return _train(cfg, run_dir, checkpoint, saved.get("preset"))


def _run_out(args: argparse.Namespace) -> int:
    from sinklab.train.checkpoint import list_checkpoints
    from sinklab.train.rundir import config_differences, read_run_config

    cfg = resolve_config(args.preset, args.config, args.overrides)
    if args.print_config:
        print(json.dumps(to_dict(cfg), indent=2))
        return 0
    if args.out is None:
        raise ValueError("--out DIR is required (or --resume DIR)")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a directory")
    _check_not_foreign(out)  # before locking, so that no .lock is left in somebody else's folder
    preset = args.preset or "tiny"
    with _locked(out):
        if not (out / "config.json").exists():
            _check_not_foreign(out)
            return _train(cfg, out, None, preset)
        saved = read_run_config(out)
        diffs = config_differences(saved, cfg)
        if diffs:
            shown = "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
            raise SinklabError(
                f"{out} already holds a run with other settings (saved -> requested: {shown}); continue that "
                f"run with --resume {out}, or pick another --out"
            )
        found = list_checkpoints(out)
        start = (
            f"continuing it from {found[-1].name}" if found else "no checkpoint yet: training it from step 0"
        )
        _say(f"{out} already holds this run (same settings); {start}")
        return _train(cfg, out, found[-1] if found else None, saved.get("preset", preset), skip_finished=True)


def _check_not_foreign(out: Path) -> None:
    """A folder without config.json is used only if empty (hidden leftovers of a killed start aside)."""
    if not out.is_dir() or (out / "config.json").exists():
        return
    others = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if others:
        raise FileExistsError(
            f"--out {out} holds other files ({', '.join(others[:5])}) but no sinklab run (no config.json); "
            "pick a new or empty directory"
        )


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    from sinklab.train.rundir import remove_leftovers, run_lock

    if not _is_main_process():
        yield
        return
    with run_lock(run_dir):
        remove_leftovers(run_dir)  # safe now: no other writer can be at work in run_dir
        yield


def _train(
    cfg: Any, run_dir: Path, checkpoint: Path | None, preset: str | None, *, skip_finished: bool = False
) -> int:
    """Train, then print the summary line; `skip_finished`: a completed run is left as it is (--resume
    instead reloads its last checkpoint, checking it, and rewrites the final model and metrics)."""
    from sinklab.train.checkpoint import STEP_PREFIX
    from sinklab.train.loop import read_log, train

    finished = (
        skip_finished
        and checkpoint is not None
        and checkpoint.name == f"{STEP_PREFIX}{cfg.train.steps:07d}"
        and (run_dir / "metrics.json").is_file()
        and (run_dir / "model").is_dir()
    )
    if finished:  # the same command after a completed run: nothing to train
        _say(f"{run_dir} is already finished (step {cfg.train.steps}); nothing to do")
        logged = read_log(run_dir)
        last = logged[-1] if logged else {}
    else:
        last = train(cfg, run_dir, resume=checkpoint, preset=preset)
    if _is_main_process():
        print(_summary(run_dir, last, cfg.train.eval_eps[0]))
    return 0


def _summary(run_dir: Path, last: dict[str, Any], eps: float) -> str:
    """One line for the end of a run: where it is and its final numbers."""

    def number(key: str, fmt: str) -> str:
        value = last.get(key)
        return format(value, fmt) if isinstance(value, int | float) else "n/a"

    return (
        f"sinklab train: finished {run_dir} at step {last.get('step', '?')}: "
        f"val loss {number('val_loss', '.4f')}, Sink_1 {number('sink_1', '.2f')}% (eps {eps:g}); "
        f"metrics in {Path(run_dir) / 'metrics.json'}"
    )
