"""sinklab ablate: the cost of one ablated pass against a plain forward that computes the same loss.

Each method runs in its own subprocess, one torch thread, on the same random-initialised Llama and token ids;
time is the process CPU time of the measured loop (robust on a shared machine), the fastest of --repeats
after a warm-up; wall time is shown too:
  plain            SDPA forward, every position's logits, next-token loss: what evaluating the loss costs
  unablated        sinklab's unablated pass: the registered attention function, Sink_k counted on the side
  <ablation>       one ablated pass as `sinklab ablate` runs it (edit / hook / ids, Sink_k counted)
  mask-sink-nosink the mask-sink pass without counting Sink_k: the edit's own cost

    python benchmarks/bench_ablate.py                      # the default configs
    python benchmarks/bench_ablate.py --lengths 256        # one length
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ABLATIONS = ("mask-sink", "sink-value-zero", "massive-zero", "swap-first", "window")
METHODS = ("plain", "unablated", *ABLATIONS, "mask-sink-nosink")

# The same random Llama as the measure benchmark (this folder is on sys.path when the script runs).
from bench_measure import make_model  # noqa: E402


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM

    from sinklab.ablate.api import plan, run_pass
    from sinklab.ablate.config import AblationOptions
    from sinklab.ablate.stats import SinkCounts, token_losses
    from sinklab.measure import hf

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, args.vocab, (args.samples, args.length), generator=gen)
    batches = [(s, ids[s : s + args.batch]) for s in range(0, args.samples, args.batch)]
    if args.method == "plain":
        model = AutoModelForCausalLM.from_pretrained(args.model_dir, attn_implementation="sdpa").eval()

        def loop() -> None:
            with torch.no_grad():
                for _, batch in batches:
                    token_losses(model(batch, use_cache=False).logits, batch)

    else:
        runner = hf.prepare_hf(hf.load_hf_model(args.model_dir))
        name = "mask-sink" if args.method == "mask-sink-nosink" else args.method
        names = [] if name == "unablated" else [name]
        options = AblationOptions(massive_threshold=2.0)  # random weights: a low bar finds some dims
        interventions, _ = plan(runner, ids, names, options, 0.3, args.batch, args.vocab)
        iv = interventions[0] if interventions else None
        assert iv is None or iv.skipped is None, iv.skipped

        def loop() -> None:
            if args.method == "mask-sink-nosink":
                for _, batch in batches:
                    token_losses(runner.forward(batch, None, iv.edit), batch)
            else:
                run_pass(
                    runner,
                    ids,
                    iv,
                    SinkCounts(eps=[0.3], positions=4),
                    args.batch,
                    lambda start, losses: None,
                )

    loop()  # warm-up: first-call allocations are not what is compared
    cpu, wall = [], []
    for _ in range(args.repeats):  # the fastest of a few repeats: the least disturbed by other processes
        t0, c0 = time.perf_counter(), time.process_time()
        loop()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    out = {
        "seconds": min(cpu),
        "wall": min(wall),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print("RESULT " + json.dumps(out))


def run_method(
    method: str, model_dir: Path, length: int, samples: int, batch: int, vocab: int, repeats: int
) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--model-dir", str(model_dir)]
    cmd += ["--length", str(length), "--samples", str(samples), "--batch", str(batch), "--vocab", str(vocab)]
    cmd += ["--repeats", str(repeats)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return {"error": (proc.stderr or proc.stdout)[-400:]}
    return json.loads(line[len("RESULT ") :])


def table(title: str, results: dict[str, dict]) -> str:
    plain = results.get("plain", {}).get("seconds")
    lines = [
        f"### {title}",
        "",
        "| method | CPU time (s) | wall (s) | peak RSS (MB) | time / plain |",
        "|---|---|---|---|---|",
    ]
    for m, r in results.items():
        if "error" in r:
            lines.append(f"| {m} | error: {r['error'][-160:]!r} | | | |")
            continue
        ratio = f"{r['seconds'] / plain:.2f}x" if plain else "-"
        lines.append(f"| {m} | {r['seconds']:.2f} | {r['wall']:.2f} | {r['peak_mb']:.0f} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", choices=METHODS)
    parser.add_argument("--model-dir")
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed repeats after a warm-up; the fastest counts"
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--vocabs", type=int, nargs="+", default=[32000, 512])
    args = parser.parse_args()
    if args.worker:
        args.method = args.worker
        worker(args)
        return
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        for vocab in args.vocabs:
            folder = Path(tmp) / f"v{vocab}"
            make_model(folder, layers=4, hidden=256, heads=4, vocab=vocab)
            for length in args.lengths:
                samples, batch = (16, 4) if length <= 256 else (4, 2)
                res = {m: run_method(m, folder, length, samples, batch, vocab, args.repeats) for m in METHODS}
                title = f"4-layer d=256 Llama, vocab {vocab}, {samples} samples of T={length}, batch {batch}"
                report.append(table(title, res))
                print(report[-1], "\n", flush=True)
    print("\n\n".join(report))


if __name__ == "__main__":
    main()
