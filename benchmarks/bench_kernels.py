"""Forward+backward speed and peak memory of every attention kernel, as ratios to SDPA softmax, in one run.

Each (kernel, T) runs in its own subprocess with one torch thread, so the peak resident memory it adds
(ru_maxrss after the steps minus ru_maxrss once the model and inputs exist) belongs to that config alone.

    python benchmarks/bench_kernels.py                      # every kernel, T = 256, 1024, 4096
    python benchmarks/bench_kernels.py --kernels softmax sigmoid --lengths 1024 --device cuda --preset 60m
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time


def child(args: argparse.Namespace) -> None:
    import torch

    from sinklab.model import AttentionConfig, ModelConfig, SinkLM, get_preset
    from sinklab.model.attention import AttentionContext

    torch.set_num_threads(1)
    torch.manual_seed(0)
    kernel, t = args.kernel, args.length
    attention = AttentionConfig(kernel=kernel)
    if args.preset:
        base = get_preset(args.preset)
        cfg = dataclasses.replace(base, attention=attention, context=max(base.context, t))
    else:
        cfg = ModelConfig(
            vocab_size=1024, context=t, n_layer=2, n_head=4, d_model=128, d_ff=512, attention=attention
        )
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    model = SinkLM(cfg).to(device=device, dtype=dtype)
    ids = torch.randint(0, cfg.vocab_size, (args.batch, t), device=device)

    def step(ids: torch.Tensor = ids) -> None:
        model.zero_grad(set_to_none=True)
        logits = model(ids)
        logits.float().logsumexp(-1).mean().backward()

    step(ids[:, :16])  # load every code path first: RSS then grows only with this config's tensors

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()  # warm-up (same peak as a timed step)
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024  # KiB on Linux
    ctx = AttentionContext(pos=torch.arange(2), n_sink=0, position=model.position, mask=model.mask)
    backend = model.layers[0].self_attn.choose_backend(ctx)
    print(
        json.dumps(
            {
                "kernel": kernel,
                "T": t,
                "seconds": min(times),
                "tokens_per_s": args.batch * t / min(times),
                "peak_mb": peak_mb,
                "backend": backend,
            }
        )
    )


def main() -> None:
    from sinklab.model.kernels import KERNELS

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kernels", nargs="*", default=None, help="default: every registered kernel")
    parser.add_argument("--lengths", nargs="*", type=int, default=[256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--preset", default=None, help="model preset (default: 2 layers, 4 heads, d 128)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kernel", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    kernels = args.kernels or KERNELS.names()
    kernels = ["softmax"] + [k for k in kernels if k != "softmax"]  # the baseline first
    rows = []
    for t in args.lengths:
        for kernel in kernels:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--kernel",
                kernel,
                "--length",
                str(t),
                "--repeats",
                str(args.repeats),
                "--batch",
                str(args.batch),
                "--device",
                args.device,
            ]
            cmd += ["--bf16"] if args.bf16 else []
            cmd += ["--preset", args.preset] if args.preset else []
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(f"{kernel} T={t} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"| kernel | path | {' | '.join(f'T={t} time / mem vs SDPA softmax' for t in args.lengths)} |")
    print("|---|---|" + "---|" * len(args.lengths))
    base = {r["T"]: r for r in rows if r["kernel"] == "softmax"}
    for kernel in kernels:
        cells, path = [], ""
        for t in args.lengths:
            row = next((r for r in rows if r["kernel"] == kernel and r["T"] == t), None)
            if row is None or t not in base:
                cells.append("n/a")
                continue
            path = row["backend"]
            b = base[t]
            mem = max(row["peak_mb"], 1) / max(b["peak_mb"], 1)
            cells.append(
                f"{row['seconds'] / b['seconds']:.2f}x / {mem:.2f}x "
                f"({row['tokens_per_s']:.0f} tok/s, {row['peak_mb']:.0f} MB)"
            )
        print(f"| {kernel} | {path} | {' | '.join(cells)} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
