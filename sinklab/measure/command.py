"""`sinklab measure`: the paper's attention-sink metric for a Hugging Face or sinklab model."""

from __future__ import annotations

import argparse
import os
from typing import Any

from sinklab.measure.checks import BOS_MODES, SPEC_FORMS
from sinklab.observe import QUERY_BLOCK


def add_model_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `sinklab measure` and `sinklab ablate` share (MeasureConfig's fields) and --threads."""
    parser.add_argument(
        "--model", required=True, help="HF hub id or folder, or a sinklab run / model / checkpoint directory"
    )
    parser.add_argument("--gguf-file", default=None, help="GGUF file name inside --model (transformers gguf)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer hub id or folder (default: the model's)")
    parser.add_argument("--input", default="random", help="one of: " + ", ".join(SPEC_FORMS))
    parser.add_argument("--length", type=int, default=64, help="tokens per sample T >= 2 (default 64)")
    parser.add_argument("--samples", type=int, default=100, help="number of samples >= 1 (default 100)")
    parser.add_argument(
        "--eps",
        type=float,
        nargs="+",
        default=[0.3],
        help="thresholds ε in (0, 1); the first is the headline (default 0.3)",
    )
    parser.add_argument("--bos", choices=BOS_MODES, default="auto", help="BOS handling (default auto)")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per forward pass >= 1 (default 8)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="model dtype (default float32, as the paper); metric maths is always fp32",
    )
    parser.add_argument(
        "--query-block", type=int, default=QUERY_BLOCK, help="queries per block of recomputed weights (>= 1)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads >= 1 (default: torch's)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model repo's own code")
    parser.add_argument(
        "--allow-pickle", action="store_true", help="allow .bin (pickle) weights; safetensors only by default"
    )


def config_from_args(args: argparse.Namespace) -> Any:
    """The MeasureConfig of parsed shared options (validated), after applying --threads."""
    import torch

    from sinklab.measure.checks import check_count
    from sinklab.measure.config import MeasureConfig

    if args.threads is not None:
        check_count("--threads", args.threads, 1, " (torch CPU threads; leave it out for torch's default)")
        torch.set_num_threads(args.threads)
    return MeasureConfig(
        length=args.length,
        samples=args.samples,
        eps=args.eps,
        bos=args.bos,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        tokenizer=args.tokenizer,
        gguf_file=args.gguf_file,
        trust_remote_code=args.trust_remote_code,
        allow_pickle=args.allow_pickle,
        query_block=args.query_block,
        progress=True,
    )


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
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    from sinklab.measure.api import measure
    from sinklab.measure.outputs import summary

    hf_logging.disable_progress_bar()
    config = config_from_args(args)
    result = measure(
        args.model,
        args.input,
        config,
        out=args.out,
        analyses=not args.no_analyses,
        plots=not args.no_plots,
    )
    print(summary(result))
    return 0
