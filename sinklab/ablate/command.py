"""`sinklab ablate`: a model's loss and Sink_1 under ablations of its sink, against the unablated model."""

from __future__ import annotations

import argparse
import os
from typing import Any

from sinklab.measure.command import add_model_input_arguments, config_from_args

# Names without importing torch (the registry lives with the ablation functions); a test checks they agree.
ABLATION_NAMES = (
    "mask-sink",
    "sink-value-zero",
    "massive-zero",
    "massive-mean",
    "swap-first",
    "window",
    "window+sinks",
)


def _heads(text: str) -> Any:
    return text if text == "sink" else _int(text)


def _swap(text: str) -> Any:
    return text if text == "random" else _int(text)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_input_arguments(parser)  # the model and input options are `sinklab measure`'s
    # What to ablate.
    parser.add_argument(
        "--ablations",
        nargs="+",
        default=None,
        metavar="NAME",
        help="ablations to run (default: all): " + ", ".join(ABLATION_NAMES),
    )
    parser.add_argument(
        "--positions",
        type=_int,
        nargs="+",
        default=[1],
        help="key positions (from 1) that mask-sink masks and sink-value-zero zeroes (default 1)",
    )
    parser.add_argument(
        "--layers", type=_int, nargs="+", default=None, help="layers (from 0) for mask-sink / sink-value-zero"
    )
    parser.add_argument(
        "--heads",
        type=_heads,
        nargs="+",
        default=None,
        help="heads (from 0) for mask-sink / sink-value-zero, or 'sink': heads with α₁ > ε (default: all)",
    )
    parser.add_argument("--window", type=_int, default=None, help="window W in keys (default --length // 4)")
    parser.add_argument(
        "--sink-tokens",
        type=_int,
        nargs="+",
        default=[1, 4],
        help="first tokens window+sinks keeps in view, one row each (default 1 4)",
    )
    parser.add_argument(
        "--swap-token", type=_swap, default="random", help="swap-first: a token id or 'random' (default)"
    )
    parser.add_argument("--seed", type=_int, default=0, help="seed of swap-first's random tokens (default 0)")
    parser.add_argument(
        "--massive-threshold",
        type=float,
        default=20.0,
        help="a first-token dim is massive when |h| > this x the median |h| (default 20)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the figures (report.html has none)")
    parser.add_argument(
        "--out", required=True, help="output folder (created if missing; never a sinklab training run's own)"
    )


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    from sinklab.ablate.api import ablate
    from sinklab.ablate.outputs import summary
    from sinklab.measure.checks import MeasureError

    hf_logging.disable_progress_bar()
    config = config_from_args(args)
    heads = args.heads
    if heads is not None and "sink" in heads:
        if len(heads) > 1:
            raise MeasureError("--heads takes head numbers or 'sink', not both")
        heads = "sink"
    result = ablate(
        args.model,
        args.input,
        args.ablations,
        config,
        out=args.out,
        plots=not args.no_plots,
        positions=args.positions,
        layers=args.layers,
        heads=heads,
        window=args.window,
        sink_tokens=args.sink_tokens,
        swap_token=args.swap_token,
        seed=args.seed,
        massive_threshold=args.massive_threshold,
    )
    print(summary(result))
    return 0
