"""Training throughput of `sinklab train` against a plain PyTorch loop of the same model, in one run.

    python benchmarks/bench_train.py [--steps 60] [--device cpu|cuda] [--preset tiny] [--compile]

Both sides train SinkLM (SDPA attention) with AdamW, clipping and the same global batch; the plain loop
feeds random token ids from memory and does nothing else, so the ratio is the trainer's overhead (data
from the memory-mapped token file, loss mask, logging, progress bar). Each side runs in its own process
so its peak memory is its own. Also: model FLOPs utilisation against a measured matmul peak, and the
time of one sink evaluation (validation loss + sink record on 100 x 64 tokens) as a share of the
training time between two evaluations at the preset's eval interval.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import torch


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def matmul_peak_flops(device: torch.device, dtype: torch.dtype) -> float:
    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    reps = 50 if device.type == "cuda" else 5
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def flops_per_token(cfg, context: int) -> float:
    """Training FLOPs per token: 6 x (non-embedding params + lm_head) + attention scores/values (PaLM)."""
    from sinklab.model import SinkLM

    with torch.device("meta"):
        model = SinkLM(cfg)
    params = model.num_parameters() - model.embed_tokens.weight.numel()
    return 6 * params + 12 * cfg.n_layer * cfg.d_model * context


def run_config(args):
    from sinklab.train.command import resolve_config

    sets = [
        f"train.steps={args.steps}",
        f"train.eval_every={args.steps // 2}",
        "train.checkpoint_every=0",
        "train.progress=false",
        "train.tensorboard=false",
        f"train.device={args.device}",
        f"train.compile={str(args.compile).lower()}",
        "train.threads=1",
        f"data.corpus={args.corpus}",
        f"data.cache_dir={args.cache}",
        "data.val_fraction=0.1",
    ]
    return resolve_config(args.preset, None, sets)


def part_sinklab(args) -> dict:
    from sinklab.train.loop import read_log, train

    out = Path(tempfile.mkdtemp(prefix="bench_train_"))
    train(run_config(args), out)
    log = read_log(out)
    return {"tokens_per_s": log[-1]["tokens_per_s"], "peak_mb": peak_memory_mb(torch.device(args.device))}


def part_plain(args) -> dict:
    """The baseline: the same model and optimiser in the shortest loop that trains it."""
    import torch.nn.functional as F

    from sinklab.data.pipeline import prepare_data
    from sinklab.model import SinkLM
    from sinklab.train.loop import resolve_model_config

    cfg = run_config(args)
    data = prepare_data(cfg.data, batch_size=cfg.train.batch_size, seed=0)
    mcfg = resolve_model_config(cfg, data)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = SinkLM(mcfg).to(device)
    step_fn = torch.compile(model) if args.compile else model
    t = cfg.train
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=t.lr,
        betas=t.betas,
        weight_decay=t.weight_decay,
        fused=device.type == "cuda" or None,
    )
    b, c = t.batch_size, cfg.data.context
    ids = torch.randint(0, data.tokenizer.vocab_size, (args.steps, b, c + 1), device=device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    half = args.steps // 2
    t0 = 0.0
    for step in range(args.steps):
        if step == half:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        x, y = ids[step, :, :-1], ids[step, :, 1:]
        if amp is not None:
            with amp:
                logits = step_fn(x)
        else:
            logits = step_fn(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        float(loss)  # the trainer reads the loss every step too
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens_per_s = b * c * (args.steps - half) / seconds

    # One sink evaluation, as the trainer runs it.
    from sinklab.train.evaluate import autocast_for, record_sink, target_mask, validation_loss
    from sinklab.train.loop import EVAL_BATCH

    auto = autocast_for(device, t.precision)
    val = torch.from_numpy(data.val).to(device)
    eval_ids = torch.from_numpy(data.eval_ids).to(device)
    mask = target_mask(model, c).to(device)
    model.eval()
    times = []
    for _ in range(3):
        if device.type == "cuda":
            torch.cuda.synchronize()
        e0 = time.perf_counter()
        validation_loss(model, val, mask, EVAL_BATCH, auto)
        record_sink(model, eval_ids, EVAL_BATCH, auto)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - e0)
    eval_s = min(times)
    step_s = b * c / tokens_per_s
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak = matmul_peak_flops(device, dtype)
    fpt = flops_per_token(mcfg, c)
    return {
        "tokens_per_s": tokens_per_s,
        "peak_mb": peak_memory_mb(device),
        "eval_s": eval_s,
        "step_s": step_s,
        "eval_share": eval_s / (eval_s + get_default_eval_every(args) * step_s),
        "matmul_peak_tflops": peak / 1e12,
        "flops_per_token": fpt,
        "params": sum(p.numel() for p in model.parameters()),
    }


def get_default_eval_every(args) -> int:
    from sinklab.train.presets import get_run_preset

    return get_run_preset(args.preset).train.eval_every


def default_corpus(folder: Path) -> Path:
    """About 1 MB of real Python source (a few stdlib packages): no BPE over the whole stdlib needed."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for pkg in ("json", "email", "asyncio", "http") for p in sorted((root / pkg).glob("*.py"))]
    path = folder / "bench_corpus.jsonl"
    path.write_text("".join(json.dumps({"text": p.read_text()}) + "\n" for p in files))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--part", choices=["plain", "sinklab"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part:
        result = part_plain(args) if args.part == "plain" else part_sinklab(args)
        print("RESULT " + json.dumps(result))
        return
    work = Path(tempfile.mkdtemp(prefix="bench_train_"))
    corpus = default_corpus(work)
    results = {}
    for part in ("plain", "sinklab"):  # plain first: it also fills the tokenizer/token cache
        cmd = [
            sys.executable,
            __file__,
            "--part",
            part,
            "--preset",
            args.preset,
            "--steps",
            str(args.steps),
            "--device",
            args.device,
            "--corpus",
            str(corpus),
            "--cache",
            str(work / "cache"),
        ]
        if args.compile:
            cmd.append("--compile")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
        results[part] = json.loads(line[len("RESULT ") :])
    plain, ours = results["plain"], results["sinklab"]
    mfu = lambda tps: tps * plain["flops_per_token"] / (plain["matmul_peak_tflops"] * 1e12)  # noqa: E731
    print(
        f"preset {args.preset}, device {args.device}, threads 1, compile {args.compile}, "
        f"{plain['params'] / 1e6:.2f}M params"
    )
    print(
        f"tokens/s    plain {plain['tokens_per_s']:10.0f}   sinklab {ours['tokens_per_s']:10.0f}   "
        f"ratio {ours['tokens_per_s'] / plain['tokens_per_s']:.3f} (target >= 0.95)"
    )
    print(
        f"peak MB     plain {plain['peak_mb']:10.0f}   sinklab {ours['peak_mb']:10.0f}   "
        f"ratio {ours['peak_mb'] / plain['peak_mb']:.3f}"
    )
    print(
        f"MFU         plain {mfu(plain['tokens_per_s']):10.1%}   sinklab {mfu(ours['tokens_per_s']):10.1%}   "
        f"(matmul peak {plain['matmul_peak_tflops'] * 1e3:.1f} GFLOP/s measured)"
    )
    print(
        f"eval        {plain['eval_s'] * 1e3:.0f} ms per evaluation, "
        f"{plain['step_s'] * 1e3:.0f} ms per step; "
        f"share at eval_every={get_default_eval_every(args)}: {plain['eval_share']:.1%} (target <= 5%)"
    )


if __name__ == "__main__":
    main()
