"""`sinklab trajectory CHECKPOINT... --input SPEC --out DIR`: when the sink emerged, checkpoint by
checkpoint."""

from __future__ import annotations

import argparse

from sinklab.measure.command import add_model_input_arguments, measure_config, quiet_transformers
from sinklab.trajectory.series import ACCEPTED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help=ACCEPTED)
    parser.add_argument(
        "--revisions",
        default=None,
        help="with one hub id: its revisions, comma-separated names and ranges PREFIX<start>:<stop>:<stride> "
        "(stop included; a stride xN multiplies), e.g. step0,step1:512:x2,step1000:143000:1000",
    )
    parser.add_argument(
        "--tokens-per-step",
        type=int,
        default=None,
        help="tokens per training step, where the checkpoints' own files do not say (Pythia: 2097152)",
    )
    parser.add_argument(
        "--keep-downloads",
        action="store_true",
        help="keep the hub revisions this command downloads in the cache (default: each is dropped once "
        "measured; revisions cached before are never dropped)",
    )
    # --input and the measure options, as `sinklab measure` has them (--positions defaults to 4 here)
    add_model_input_arguments(parser, model=False)
    for action in parser._actions:
        if action.dest == "positions":
            action.help = f"{action.help}; trajectory's default: 4 (Sink_1..Sink_4 by the fast path)"
    parser.add_argument("--no-plots", action="store_true", help="skip the figures and report.html")
    parser.add_argument("--out", required=True, help="output folder; the same command again continues it")


def run(args: argparse.Namespace) -> int:
    quiet_transformers()
    from sinklab.trajectory.api import DEFAULT_POSITIONS, run_trajectory
    from sinklab.trajectory.outputs import summary

    lengths = args.length if isinstance(args.length, list) else [args.length]
    positions = args.positions if args.positions is not None else min(DEFAULT_POSITIONS, max(lengths))
    cfg = measure_config(args, positions=positions)
    result = run_trajectory(
        args.checkpoints,
        args.source,
        cfg,
        args.out,
        revisions=args.revisions,
        tokens_per_step=args.tokens_per_step,
        keep_downloads=args.keep_downloads,
        plots=not args.no_plots,
    )
    print(summary(result))
    return 0
