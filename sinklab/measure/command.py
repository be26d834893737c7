"""`sinklab measure`: the paper's attention-sink metric for a Hugging Face or sinklab model."""

from __future__ import annotations

import argparse
import os
from typing import Any

from sinklab.config import add_config_arguments, config_from_args
from sinklab.measure.checks import SPEC_FORMS
from sinklab.measure.config import MeasureConfig


def add_model_input_arguments(
    parser: argparse.ArgumentParser, skip: tuple[str, ...] = (), model: bool = True
) -> None:
    """The options `sinklab measure`, `ablate` and `trajectory` share: --model (unless `model` is False),
    --input, MeasureConfig's fields but `skip` (generated from the dataclass) and --threads."""
    if model:
        parser.add_argument(
            "--model",
            required=True,
            help="HF hub id or folder, or a sinklab run / model / checkpoint directory",
        )
    parser.add_argument("--input", dest="source", default="random", help="one of: " + ", ".join(SPEC_FORMS))
    add_config_arguments(parser, MeasureConfig, skip=("progress", "sweep", *skip))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads >= 1 (default: torch's)")


def measure_config(args: argparse.Namespace, skip: tuple[str, ...] = (), **fixed: Any) -> MeasureConfig:
    """The MeasureConfig of parsed shared options but `skip` (validated), after applying --threads;
    `fixed`: fields set by the command itself."""
    import torch

    from sinklab.measure.checks import check_count

    if args.threads is not None:
        check_count("--threads", args.threads, 1, " (torch CPU threads; leave it out for torch's default)")
        torch.set_num_threads(args.threads)
    return config_from_args(
        args, MeasureConfig, skip=("progress", "sweep", *skip, *fixed), progress=True, **fixed
    )


def quiet_transformers() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_input_arguments(parser)
    parser.add_argument("--no-analyses", action="store_true", help="skip norms and angles")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument(
        "--out",
        required=True,
        help="output folder (created if missing; checked for writability before measuring; "
        "never a sinklab training run's own folder)",
    )


def run(args: argparse.Namespace) -> int:
    quiet_transformers()
    from sinklab.measure.api import measure_command
    from sinklab.measure.outputs import summary

    config = measure_config(args)
    result = measure_command(
        args.model, args.source, config, out=args.out, analyses=not args.no_analyses, plots=not args.no_plots
    )
    print(summary(result))
    return 0


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="measure --out folders or training runs")
    parser.add_argument("--out", default=None, help="write compare.png and compare.csv to this folder")


def run_compare(args: argparse.Namespace) -> int:
    from sinklab.measure.compare import compare

    print(compare(args.dirs, args.out))
    return 0
