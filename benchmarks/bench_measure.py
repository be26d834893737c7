"""sinklab measure vs the paper's method vs a plain forward: time and whole-process peak memory.

Time is the process CPU time of the measured loop (robust on a shared machine; one thread, so it is
close to wall time on an idle one); wall time is shown too.

Each method runs in its own subprocess (peak RSS from resource.getrusage is whole-process), one torch
thread, on the same random-initialised Llama and the same random token ids:
  plain    SDPA forward, no measurement
  plain-last     the same, projecting only the last position to logits (logits_to_keep=1), as a
           measurement does: what sinklab's own cost is measured against
  sinklab  the registered attention function + streaming record (metric and analyses)
  sinklab-noan   the same without the Sec. 3 analyses
  paper    the released code's way: eager, generate(max_new_tokens=1, output_attentions=True) one
           prompt at a time, every map of every sample stacked, (A / ratios).sum(-2) afterwards

    python benchmarks/bench_measure.py                 # T sweep + the issue's target config
    python benchmarks/bench_measure.py --only target   # just the target config
    python benchmarks/bench_measure.py --whole-process # `sinklab measure` as a whole process vs a plain one

--whole-process times two whole processes, alternating, on the target config (12-layer d=256 8-head
Llama, 8 x 1024 ids, batch 2, one thread): `plain`, a `python -c` that loads the model with transformers,
reads the same ids file and runs model(ids) (full logits) in batches under no_grad, and `sinklab measure`
with its default outputs (metrics.json, CSVs, PNG plots). Wall time and peak RSS (os.wait4) of each run,
start-up, imports and writing included; min / median per side and the ratio of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

METHODS = ("plain", "plain-last", "sinklab", "sinklab-noan", "paper")


def make_model(folder: Path, layers: int, hidden: int, heads: int, vocab: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=8192,
    )
    LlamaForCausalLM(cfg).save_pretrained(folder)


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM

    from sinklab.measure import hf
    from sinklab.measure.api import measure_token_ids
    from sinklab.measure.metrics import sink_percent

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, args.vocab, (args.samples, args.length), generator=gen)
    out: dict[str, object] = {}
    if args.method.startswith("plain"):
        model = AutoModelForCausalLM.from_pretrained(args.model_dir, attn_implementation="sdpa").eval()
        keep = 1 if args.method == "plain-last" else 0
        rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            for s in range(0, args.samples, args.batch):
                model(ids[s : s + args.batch], use_cache=False, logits_to_keep=keep)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    elif args.method.startswith("sinklab"):
        model = hf.load_hf_model(args.model_dir)
        runner = hf.prepare_hf(model, query_block=args.query_block)
        rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0, c0 = time.perf_counter(), time.process_time()
        metrics = measure_token_ids(
            runner, ids, (0.3,), args.batch, analyses=args.method == "sinklab", query_block=args.query_block
        )
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        out["sink_percent"] = metrics["sink_percent"][:8]
        out["alpha_first"] = [[row[0] for row in layer] for layer in metrics["alpha"]]
    else:
        # The paper's method as its released code runs it (paper.md Sec. 2.2): eager attention, one prompt
        # at a time through generate(max_new_tokens=1, output_attentions=True), the prompt pass's maps of
        # every layer stacked into A (S, L, H, T, T), then (A / ratios).sum(-2), ratios = T - j over keys.
        model = AutoModelForCausalLM.from_pretrained(args.model_dir, attn_implementation="eager").eval()
        rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0, c0 = time.perf_counter(), time.process_time()
        maps = []
        with torch.no_grad():
            for s in range(args.samples):
                res = model.generate(
                    ids[s : s + 1],
                    max_new_tokens=1,
                    do_sample=False,
                    output_attentions=True,
                    return_dict_in_generate=True,
                    pad_token_id=0,
                )
                maps.append(torch.stack(res.attentions[0], dim=1))  # (1, L, H, T, T) of the prompt pass
                del res
        attn = torch.cat(maps)
        del maps
        ratios = torch.arange(args.length, 0, -1)
        alpha = (attn / ratios).sum(dim=-2)  # (S, L, H, T)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        out["sink_percent"] = sink_percent(alpha, 0.3)[:8].tolist()
        out["alpha_first"] = alpha[..., 0].mean(0).tolist()
    out.update(
        seconds=cpu,
        wall=elapsed,
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        loaded_mb=rss_loaded / 1024,
    )
    print("RESULT " + json.dumps(out))


def run_method(
    method: str, model_dir: Path, length: int, samples: int, batch: int, vocab: int, query_block: int = 128
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        method,
        "--model-dir",
        str(model_dir),
        "--length",
        str(length),
        "--samples",
        str(samples),
        "--batch",
        str(batch),
        "--vocab",
        str(vocab),
        "--query-block",
        str(query_block),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return {"error": (proc.stderr or proc.stdout)[-400:]}
    return json.loads(line[len("RESULT ") :])


def compare(a: dict, b: dict) -> str:
    import numpy as np

    if "alpha_first" not in a or "alpha_first" not in b:
        return "-"
    diff = float(np.max(np.abs(np.array(a["alpha_first"]) - np.array(b["alpha_first"]))))
    same = a["sink_percent"] == b["sink_percent"]
    return f"{'identical' if same else 'DIFFERENT'} Sink (max |Δα_1| {diff:.1e})"


def table(title: str, results: dict[str, dict]) -> str:
    plain, paper = results.get("plain", {}), results.get("paper", {})

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}x" if a and b else "-"

    lines = [
        f"### {title}",
        "",
        "| method | CPU time (s) | wall (s) | peak RSS (MB) | time / plain | memory / plain "
        "| paper's time / this | paper's memory / this |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, r in results.items():
        if "error" in r:
            lines.append(f"| {m} | error: {r['error'][-120:]!r} | | | | | | |")
            continue
        lines.append(
            f"| {m} | {r['seconds']:.2f} | {r['wall']:.2f} | {r['peak_mb']:.0f} "
            f"| {ratio(r['seconds'], plain.get('seconds'))} | {ratio(r['peak_mb'], plain.get('peak_mb'))} "
            f"| {ratio(paper.get('seconds'), r['seconds'])} | {ratio(paper.get('peak_mb'), r['peak_mb'])} |"
        )
    if "paper" in results and "sinklab" in results:
        lines.append("")
        lines.append(f"sinklab vs paper: {compare(results['sinklab'], results['paper'])}")
    return "\n".join(lines)


# The reference process of --whole-process: what a user runs to push the same ids through the model.
PLAIN_PROCESS = """
import json, sys
import torch
torch.set_num_threads(1)
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
with open(sys.argv[2]) as f:
    ids = torch.tensor([json.loads(line)["input_ids"] for line in f])
batch = int(sys.argv[3])
with torch.no_grad():
    for s in range(0, ids.shape[0], batch):
        model(ids[s : s + batch], use_cache=False)
"""


def timed_process(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one whole process; its output is discarded, a failure raised."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read() if proc.stderr is not None else b""
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not the running max of all children
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}): {stderr.decode()[-600:]}")
    return wall, usage.ru_maxrss / 1024


def whole_process(tmp: Path, repeats: int, vocab: int) -> str:
    """`sinklab measure` vs a plain-forward process on the issue's target config, A B A B ..."""
    import torch

    samples, length, batch = 8, 1024, 2
    model_dir, ids_file, out = tmp / "whole-model", tmp / "ids.jsonl", tmp / "whole-out"
    make_model(model_dir, layers=12, hidden=256, heads=8, vocab=vocab)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (samples, length), generator=gen)
    ids_file.write_text("".join(json.dumps({"input_ids": row}) + "\n" for row in ids.tolist()))
    commands = {
        "plain forward": [sys.executable, "-c", PLAIN_PROCESS, str(model_dir), str(ids_file), str(batch)],
        "sinklab measure": [
            *(sys.executable, "-m", "sinklab.cli", "measure", "--model", str(model_dir)),
            *("--input", f"ids:{ids_file}", "--length", str(length), "--samples", str(samples)),
            *("--batch-size", str(batch), "--threads", "1", "--out", str(out)),
        ],
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for cmd in commands.values():  # warm-up: page cache, font cache; not counted
        timed_process(cmd, env)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, cmd in commands.items():
            runs[name].append(timed_process(cmd, env))
    lines = [
        f"### whole process: 12-layer d=256 8-head Llama, {samples} x {length} ids, batch {batch}, "
        f"one thread ({repeats} runs each, alternating)",
        "",
        "| process | wall min (s) | wall median (s) | peak RSS min (MB) | peak RSS median (MB) |",
        "|---|---|---|---|---|",
    ]
    for name, values in runs.items():
        walls, rss = [v[0] for v in values], [v[1] for v in values]
        lines.append(
            f"| {name} | {min(walls):.2f} | {statistics.median(walls):.2f} | {min(rss):.0f} "
            f"| {statistics.median(rss):.0f} |"
        )
    (plain, measured) = (runs[name] for name in commands)
    pairs = [m[0] / p[0] for p, m in zip(plain, measured, strict=True)]
    wall_ratio = statistics.median(v[0] for v in measured) / statistics.median(v[0] for v in plain)
    rss_ratio = statistics.median(v[1] for v in measured) / statistics.median(v[1] for v in plain)
    lines += [
        "",
        f"sinklab measure / plain: wall {wall_ratio:.2f}x (medians; run by run {min(pairs):.2f}-"
        f"{max(pairs):.2f}x, median {statistics.median(pairs):.2f}x), peak RSS {rss_ratio:.2f}x",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", choices=METHODS)
    parser.add_argument("--model-dir")
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--query-block", type=int, default=128)
    parser.add_argument("--only", choices=["sweep", "target"], default=None)
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 1024, 4096])
    parser.add_argument("--target-heads", type=int, nargs="+", default=[4, 8])
    parser.add_argument(
        "--whole-process", action="store_true", help="sinklab measure vs a plain-forward process, whole"
    )
    parser.add_argument("--repeats", type=int, default=5, help="--whole-process runs of each (default 5)")
    args = parser.parse_args()
    if args.worker:
        args.method = args.worker
        worker(args)
        return
    if args.whole_process:
        with tempfile.TemporaryDirectory() as tmp:
            print(whole_process(Path(tmp), args.repeats, args.vocab), flush=True)
        return
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "sweep"):
            small = Path(tmp) / "small"
            make_model(small, layers=4, hidden=256, heads=4, vocab=args.vocab)
            for length in args.lengths:
                res = {m: run_method(m, small, length, 2, 1, args.vocab, args.query_block) for m in METHODS}
                report.append(table(f"4-layer d=256 Llama, 2 samples of T={length}, batch 1", res))
                print(report[-1], "\n", flush=True)
        if args.only in (None, "target"):
            # The issue does not fix the head count: 4 heads of 64 and 8 heads of 32.
            for heads in args.target_heads:
                target = Path(tmp) / f"target{heads}"
                make_model(target, layers=12, hidden=256, heads=heads, vocab=args.vocab)
                res = {m: run_method(m, target, 1024, 8, 2, args.vocab, args.query_block) for m in METHODS}
                title = f"target: 12-layer d=256 Llama, {heads} heads, 8 samples of T=1024, batch 2"
                report.append(table(title, res))
                print(report[-1], "\n", flush=True)
            growth = {
                n: run_method("sinklab", target, 1024, n, 2, args.vocab, args.query_block) for n in (2, 16)
            }
            line = ", ".join(
                f"{n} samples: {r.get('peak_mb', float('nan')):.0f} MB" for n, r in growth.items()
            )
            report.append(f"sinklab peak RSS by number of samples (T=1024, batch 2): {line}")
            print(report[-1], flush=True)
    print("\n\n".join(report))


if __name__ == "__main__":
    main()
