"""`sinklab ablate`: a model's loss and Sink_1 under ablations of its sink, against the unablated model."""

from __future__ import annotations

import argparse

from sinklab.ablate.config import ABLATION_NAMES, HEADS_SINK, SWAP_RANDOM, AblationOptions
from sinklab.config import add_config_arguments, config_from_args
from sinklab.measure.command import add_model_input_arguments, measure_config, quiet_transformers


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _int_or(word: str):
    return lambda text: text if text == word else _int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # the model and input options are `sinklab measure`'s (its --positions is ablate's own option here)
    add_model_input_arguments(parser, skip=("positions",))
    parser.add_argument(
        "--ablations",
        nargs="+",
        default=None,
        metavar="NAME",
        help="ablations to run (default: all): " + ", ".join(ABLATION_NAMES),
    )
    integers = {
        "positions": _int,
        "layers": _int,
        "window": _int,
        "sink_tokens": _int,
        "seed": _int,
        "massive_layer": _int,
    }
    kinds = {**integers, "heads": _int_or(HEADS_SINK), "swap_token": _int_or(SWAP_RANDOM)}
    add_config_arguments(parser, AblationOptions, types_=kinds)
    parser.add_argument("--no-plots", action="store_true", help="skip the figures (report.html has none)")
    parser.add_argument(
        "--out", required=True, help="output folder (created if missing; never a sinklab training run's own)"
    )


def run(args: argparse.Namespace) -> int:
    quiet_transformers()
    from sinklab.ablate.api import ablate_command
    from sinklab.ablate.outputs import summary
    from sinklab.measure.checks import MeasureError

    heads = args.heads
    if heads is not None and HEADS_SINK in heads:
        if len(heads) > 1:
            raise MeasureError(f"--heads takes head numbers or {HEADS_SINK!r}, not both")
        args.heads = HEADS_SINK
    options = config_from_args(args, AblationOptions)
    result = ablate_command(
        args.model,
        args.source,
        args.ablations,
        measure_config(args, skip=("positions",)),
        options,
        out=args.out,
        plots=not args.no_plots,
    )
    print(summary(result))
    return 0
