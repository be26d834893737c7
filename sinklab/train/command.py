"""`sinklab train`: pre-train a small LM and track the sink as it emerges.

sinklab train [--preset NAME] [--config FILE] [--set key=value ...] --out DIR
sinklab train --resume DIR [--set train.steps=N ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sinklab.config import apply_overrides, to_dict

# What may change when resuming: things that do not alter the numbers already produced.
RESUME_KEYS = (
    "train.steps",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.progress",
    "train.tensorboard",
    "train.threads",
    "train.compile",
    "train.device",
    "train.distributed",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sinklab.train.presets import run_preset_names

    parser.add_argument(
        "--preset", default=None, help=f"run preset: {', '.join(run_preset_names())} (default tiny)"
    )
    parser.add_argument(
        "--config", type=Path, help="JSON file with model/data/train sections, over the preset"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. train.steps=200 or model.attention.kernel=sigmoid (repeatable)",
    )
    parser.add_argument("--out", type=Path, help="run directory to create")
    parser.add_argument(
        "--resume", type=Path, help="continue the run in this directory from its last checkpoint"
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
    from sinklab.train.config import run_config_from_dict
    from sinklab.train.presets import get_run_preset

    cfg = get_run_preset(preset or "tiny")
    if config_file is not None:
        try:
            update = json.loads(Path(config_file).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{config_file}: not valid JSON ({err})") from None
        cfg = run_config_from_dict(_merge(to_dict(cfg), update))
    return apply_overrides(cfg, overrides)


def resume_target(path: Path) -> tuple[Path, Path]:
    """(run dir, checkpoint dir) for --resume given a run dir or one of its checkpoint folders."""
    from sinklab.train.checkpoint import STEP_PREFIX, list_checkpoints

    path = Path(path)
    if path.name.startswith(STEP_PREFIX) and path.parent.name == "checkpoints":
        return path.parent.parent, path
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--resume {path}: no config.json, so this is not a sinklab run directory")
    found = list_checkpoints(path)
    if not found:
        raise RuntimeError(
            f"--resume {path}: the run has no checkpoint yet (nothing to resume; start it again)"
        )
    return path, found[-1]


def run(args: argparse.Namespace) -> int:
    from sinklab.train.config import run_config_from_dict
    from sinklab.train.loop import train

    if args.resume is not None:
        if args.preset or args.config or args.out:
            raise ValueError("--resume takes the run's own config; drop --preset/--config/--out")
        run_dir, checkpoint = resume_target(args.resume)
        bad = [o for o in args.overrides if o.split("=", 1)[0].strip() not in RESUME_KEYS]
        if bad:
            raise ValueError(
                f"cannot change {', '.join(bad)} when resuming; accepted: {', '.join(RESUME_KEYS)}"
            )
        saved = json.loads((run_dir / "config.json").read_text())
        cfg = apply_overrides(run_config_from_dict(saved), args.overrides)
        if args.print_config:
            print(json.dumps(to_dict(cfg), indent=2))
            return 0
        train(cfg, run_dir, resume=checkpoint, preset=saved.get("preset"))
        return 0
    cfg = resolve_config(args.preset, args.config, args.overrides)
    if args.print_config:
        print(json.dumps(to_dict(cfg), indent=2))
        return 0
    if args.out is None:
        raise ValueError("--out DIR is required (or --resume DIR)")
    if (args.out / "config.json").exists():
        raise ValueError(
            f"{args.out} already holds a run; continue it with --resume {args.out} or pick a new --out"
        )
    train(cfg, args.out, preset=args.preset or "tiny")
    return 0
