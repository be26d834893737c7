"""`sinklab ablate`: a model's loss and Sink_1 under ablations of its sink, against the unablated model."""

from __future__ import annotations

import argparse
import os
from typing import Any

from sinklab.measure.inputs import BOS_MODES, SPEC_FORMS
from sinklab.measure.record import QUERY_BLOCK

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
    # The model and input options are `sinklab measure`'s.
    parser.add_argument(
        "--model", required=True, help="HF hub id or folder, or a sinklab run / model / checkpoint directory"
    )
    parser.add_argument("--gguf-file", default=None, help="GGUF file name inside --model (transformers gguf)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer hub id or folder (default: the model's)")
    parser.add_argument("--input", default="random", help="one of: " + ", ".join(SPEC_FORMS))
    parser.add_argument("--length", type=int, default=64, help="tokens per sample T >= 2 (default 64)")
    parser.add_argument("--samples", type=int, default=100, help="number of samples >= 1 (default 100)")
    parser.add_argument("--bos", choices=BOS_MODES, default="auto", help="BOS handling (default auto)")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per forward pass >= 1 (default 8)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="model dtype (default float32)",
    )
    parser.add_argument(
        "--query-block", type=int, default=QUERY_BLOCK, help="queries per block of recomputed weights (>= 1)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads >= 1 (default: torch's)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model repo's own code")
    parser.add_argument(
        "--allow-pickle", action="store_true", help="allow .bin (pickle) weights; safetensors only by default"
    )
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
    parser.add_argument(
        "--eps",
        type=float,
        nargs="+",
        default=[0.3],
        help="ε for Sink_k, in (0, 1); the first is the headline",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the figures (report.html has none)")
    parser.add_argument(
        "--out", required=True, help="output folder (created if missing; never a sinklab training run's own)"
    )


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    from transformers.utils import logging as hf_logging

    from sinklab.ablate.api import ablate
    from sinklab.ablate.outputs import summary
    from sinklab.measure.checks import MeasureError, check_count

    hf_logging.disable_progress_bar()
    if args.threads is not None:
        check_count("--threads", args.threads, 1, " (torch CPU threads; leave it out for torch's default)")
        torch.set_num_threads(args.threads)
    heads = args.heads
    if heads is not None and "sink" in heads:
        if len(heads) > 1:
            raise MeasureError("--heads takes head numbers or 'sink', not both")
        heads = "sink"
    result = ablate(
        args.model,
        args.input,
        args.ablations,
        length=args.length,
        samples=args.samples,
        positions=args.positions,
        layers=args.layers,
        heads=heads,
        window=args.window,
        sink_tokens=args.sink_tokens,
        swap_token=args.swap_token,
        seed=args.seed,
        massive_threshold=args.massive_threshold,
        eps=args.eps,
        bos=args.bos,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        out=args.out,
        tokenizer=args.tokenizer,
        gguf_file=args.gguf_file,
        trust_remote_code=args.trust_remote_code,
        allow_pickle=args.allow_pickle,
        plots=not args.no_plots,
        query_block=args.query_block,
        progress=True,
    )
    print(summary(result))
    return 0
