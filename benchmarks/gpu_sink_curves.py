"""Sink_1 curves on one GPU within a wall-clock budget (the paper's setting beyond a CPU).

Trains at once, as separate `sinklab train` processes on the same GPU (bf16 autocast, the trainer's default
on CUDA): the no-BOS CPU recipe (`--preset nobos`, seeds 0 and 1) and the paper's 60m model shape with its
packing (`--preset 60m`: 10 x 768, context 2048, no BOS; 64 x 2048 tokens per step instead of the paper's
512 x 2048, so that steps, which the paper finds matter more than tokens, come quickly). Each trains
"forever" and gets SIGTERM at the budget (the trainer saves a checkpoint and stops); then OUT/summary.json
holds each run's steps, tokens, tokens/s and Sink_1 curve, and OUT/sink_curves_steps.png / _tokens.png
draw them.

    python benchmarks/gpu_sink_curves.py --out runs/gpu-check --budget 420    # on the GPU machine
    python benchmarks/gpu_sink_curves.py --out /tmp/g --budget 40 --micro --device cpu   # machinery, CPU

The budget counts from the start of the processes and includes their data preparation (the BPE of the
embedded corpus on a fresh machine), so the first evaluation of a fresh run comes after that.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from statistics import median

RUNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("nobos-seed0", "nobos", ("train.seed=0", "train.eval_every=500", "train.checkpoint_every=20000")),
    ("nobos-seed1", "nobos", ("train.seed=1", "train.eval_every=500", "train.checkpoint_every=20000")),
    (
        "60m-shape",
        "60m",
        (
            "train.batch_size=64",
            "train.micro_batch_size=16",
            "train.warmup=100",
            "train.eval_every=50",
            "train.checkpoint_every=1000",
        ),
    ),
)
FOREVER = ("train.steps=10000000", "train.progress=false", "train.tensorboard=false")


def command(preset: str, overrides: tuple[str, ...], run_dir: Path, device: str, micro: bool) -> list[str]:
    from sinklab.experiments.suites import MICRO

    sets = [*(MICRO if micro else ()), *overrides, *FOREVER, f"train.device={device}"]
    if micro:  # the micro scale's own eval cadence, so that a few seconds give a curve
        sets += ["train.eval_every=2", "train.checkpoint_every=1000"]
    return [
        sys.executable,
        "-m",
        "sinklab.cli",
        "train",
        "--preset",
        preset,
        *(a for s in sets for a in ("--set", s)),
        "--out",
        str(run_dir),
    ]


def train_all(out: Path, budget: float, device: str, micro: bool) -> dict[str, Path]:
    """Start every run, stop them all at the budget (or on Ctrl-C / SIGTERM) with the sweep's own helpers:
    each trainer in its own process group, SIGTERM'd if this script dies (even by kill -9), and given time
    to write its checkpoint before anything is killed."""
    from sinklab.experiments.sweep import start_child, stop_children, terminate_as_interrupt

    env = dict(os.environ, PYTHONSAFEPATH="1")
    (out / "logs").mkdir(parents=True, exist_ok=True)
    dirs = {name: (out / "runs" / name).resolve() for name, _, _ in RUNS}
    with ExitStack() as files, terminate_as_interrupt():
        procs = []
        try:
            for name, preset, overrides in RUNS:
                log = files.enter_context((out / "logs" / f"{name}.log").open("a"))
                cmd = command(preset, overrides, dirs[name], device, micro)
                procs.append(start_child(cmd, log, env, cwd=out.resolve()))
            deadline = time.monotonic() + budget
            while time.monotonic() < deadline and any(p.poll() is None for p in procs):
                time.sleep(2)
        finally:
            stop_children(procs, grace=120.0)
    return dirs


def summarize(dirs: dict[str, Path]) -> dict[str, dict]:
    rows = {}
    for name, run_dir in dirs.items():
        log = run_dir / "log.jsonl"
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.exists() else []
        evals = [x for x in lines if x.get("sink_1") is not None]
        rates = [x["tokens_per_s"] for x in lines if x.get("tokens_per_s")]
        rows[name] = {
            "steps": evals[-1]["step"] if evals else 0,
            "tokens": evals[-1].get("tokens", 0) if evals else 0,
            "tokens_per_s_median": median(rates) if rates else None,
            "sink_1_last": evals[-1]["sink_1"] if evals else None,
            "sink_1_max": max((x["sink_1"] for x in evals), default=None),
            "curve": [(x["step"], x.get("tokens", 0), x["sink_1"]) for x in evals],
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=420.0, help="seconds of training (default 420)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a machinery check)")
    parser.add_argument("--micro", action="store_true", help="micro-sized models (seconds; no sink expected)")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            sys.exit("gpu_sink_curves: CUDA is not available here; --device cpu --micro checks the machinery")
        gpu = torch.cuda.get_device_name(0)
    else:
        gpu = "none (CPU)"
    started = time.monotonic()
    try:
        dirs = train_all(args.out, args.budget, args.device, args.micro)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: every trainer has stopped and kept its checkpoint
        sys.exit("gpu_sink_curves: interrupted; the runs under --out keep their checkpoints")
    rows = summarize(dirs)
    summary = {"date": date.today().isoformat(), "gpu": gpu, "budget_s": args.budget, "runs": rows}
    summary["wall_s"] = round(time.monotonic() - started, 1)
    from sinklab import plots
    from sinklab.io import atomic_write_json

    atomic_write_json(args.out / "summary.json", summary)
    for x_key, index in (("step", 0), ("tokens", 1)):
        histories = {n: [{x_key: c[index], "sink_1": c[2]} for c in r["curve"]] for n, r in rows.items()}
        fig = plots.curves(histories, lambda h: h["sink_1"], "Sink_1 (%)", f"{gpu}, {summary['date']}", x_key)
        plots.save_png(fig, args.out / f"sink_curves_{'steps' if index == 0 else 'tokens'}.png")
    for name, r in rows.items():
        rate = f"{r['tokens_per_s_median']:.0f}" if r["tokens_per_s_median"] else "-"
        print(
            f"{name:12s} steps {r['steps']:>7} tokens {r['tokens']:>12} tok/s {rate:>8} "
            f"Sink_1 {r['sink_1_last']}"
        )
    print(f"wrote {args.out / 'summary.json'} and the curves")


if __name__ == "__main__":
    main()
