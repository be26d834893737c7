"""`sinklab list`: the registries (kernels, masks, positions, ...), the flag variants, ablations, presets
and suites."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--width", type=int, default=0, help="cut descriptions to this many characters (0: no cut)"
    )


def run(args: argparse.Namespace) -> int:
    from sinklab.listing import listing_text

    text = listing_text()
    if getattr(args, "width", 0):
        text = "\n".join(line[: args.width] for line in text.splitlines()) + "\n"
    print(text, end="")
    return 0
