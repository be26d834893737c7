"""`sinklab measure --positions K` against a plain forward, today's full mode and the paper's method, each a
whole process (start-up, imports, model loading, reading the ids and writing included).

Processes, one torch thread each, the same model folder and the same `ids:` file:
  plain          `python -c`: load with transformers (SDPA), read the ids, `model(ids)` in batches, no_grad
  plain-last     the same with `logits_to_keep=1` (no vocabulary projection, which a measurement skips too)
  positions      `sinklab measure --positions 4 --no-plots` (the fast path; analyses on, as in trajectory)
  positions-noan the same with `--no-analyses`
  full           `sinklab measure --no-plots` (every weight recomputed in query blocks)
  paper          `python -c`: eager attention, `model(ids, output_attentions=True)` one sample at a time, α
                 from the maps ((A / ratios).sum(-2)); each sample's maps are reduced before the next
                 (the released code stacks every sample's maps first: same time, more memory)

    OMP_NUM_THREADS=1 python benchmarks/bench_positions.py                 # T = 1024 and 4096, 3 rounds
    OMP_NUM_THREADS=1 python benchmarks/bench_positions.py --lengths 1024 --repeats 5

Rounds alternate the processes (A B C ... A B C ...) after one warm-up of `plain`. Each process's time is its
own CPU time (user + system, from os.wait4: on a shared machine time-slicing inflates wall time, not this) and
its wall time; each cell is the median over rounds, each ratio the median over rounds of that round's ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

POSITIONS = 4
# T -> (layers, heads, samples, batch): 8192 tokens per row. T = 4096 uses 4 layers x 4 heads, so the paper's
# method (one sample's maps: layers x heads x T x T fp32) stays at 1 GB on this 23 GB machine.
CONFIGS = {1024: (12, 8, 8, 2), 4096: (4, 4, 2, 1)}

PLAIN = """
import json, sys
import torch
torch.set_num_threads(1)
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
with open(sys.argv[2]) as f:
    ids = torch.tensor([json.loads(line)["input_ids"] for line in f])
batch, keep = int(sys.argv[3]), int(sys.argv[4])
with torch.no_grad():
    for s in range(0, ids.shape[0], batch):
        model(ids[s : s + batch], use_cache=False, logits_to_keep=keep)
"""

PAPER = """
import json, sys
import torch
torch.set_num_threads(1)
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], attn_implementation="eager").eval()
with open(sys.argv[2]) as f:
    ids = torch.tensor([json.loads(line)["input_ids"] for line in f])
ratios = torch.arange(ids.shape[1], 0, -1)
alphas = []
with torch.no_grad():
    for s in range(ids.shape[0]):
        out = model(ids[s : s + 1], use_cache=False, output_attentions=True, logits_to_keep=1)
        maps = torch.stack(out.attentions, dim=1)  # (1, L, H, T, T)
        alphas.append((maps / ratios).sum(dim=-2)[..., :8])
        del out, maps
alpha = torch.cat(alphas)
print(json.dumps({"sink_1": float((alpha[..., 0] > 0.3).double().mean() * 100)}))
"""


def make_model(folder: Path, layers: int, heads: int, vocab: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=8192,
    )
    LlamaForCausalLM(cfg).save_pretrained(folder)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one whole process (its own rusage from os.wait4: user + system time,
    which time-slicing with other processes on a shared machine does not inflate); a failure is raised."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read() if proc.stderr is not None else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{cmd[:5]} failed ({code}): {stderr.decode()[-800:]}")
    return usage.ru_utime + usage.ru_stime, wall


def commands(model: Path, ids: Path, out: Path, length: int, samples: int, batch: int) -> dict[str, list]:
    py = sys.executable
    measure = [
        *(py, "-m", "sinklab.cli", "measure", "--model", str(model), "--input", f"ids:{ids}"),
        *("--length", str(length), "--samples", str(samples), "--batch-size", str(batch)),
        *("--threads", "1", "--no-plots"),
    ]
    return {
        "plain": [py, "-c", PLAIN, str(model), str(ids), str(batch), "0"],
        "plain-last": [py, "-c", PLAIN, str(model), str(ids), str(batch), "1"],
        "positions": [*measure, "--positions", str(POSITIONS), "--out", str(out / "pos")],
        "positions-noan": [
            *measure,
            *("--positions", str(POSITIONS), "--no-analyses", "--out", str(out / "pos-noan")),
        ],
        "full": [*measure, "--out", str(out / "full")],
        "paper": [py, "-c", PAPER, str(model), str(ids)],
    }


def max_delta(out: Path) -> tuple[float, float]:
    """max |Δ Sink_k| (points, k <= K, every ε) and max |Δα_k| between the fast and the full mode."""
    import numpy as np

    fast = json.loads((out / "pos" / "metrics.json").read_text())
    full = json.loads((out / "full" / "metrics.json").read_text())
    sink = max(
        float(np.max(np.abs(np.array(v) - np.array(full["sink_percent_by_eps"][e][:POSITIONS]))))
        for e, v in fast["sink_percent_by_eps"].items()
    )
    alpha = float(np.max(np.abs(np.array(fast["alpha"]) - np.array(full["alpha"])[..., :POSITIONS])))
    return sink, alpha


def bench(tmp: Path, length: int, repeats: int, vocab: int) -> str:
    import torch

    layers, heads, samples, batch = CONFIGS[length]
    model, ids_file = tmp / f"model{length}", tmp / f"ids{length}.jsonl"
    make_model(model, layers, heads, vocab)
    ids = torch.randint(0, vocab, (samples, length), generator=torch.Generator().manual_seed(0))
    ids_file.write_text("".join(json.dumps({"input_ids": row}) + "\n" for row in ids.tolist()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmds = commands(model, ids_file, tmp / f"out{length}", length, samples, batch)
    timed(cmds["plain"], env)  # warm-up (page cache), not counted
    rounds: list[dict[str, tuple[float, float]]] = []
    for _ in range(repeats):
        rounds.append({name: timed(cmd, env) for name, cmd in cmds.items()})
        shown = {k: [round(v[0], 2), round(v[1], 2)] for k, v in rounds[-1].items()}
        print(f"T={length} round {len(rounds)} (CPU s, wall s): {json.dumps(shown)}", flush=True)
    sink, alpha = max_delta(tmp / f"out{length}")
    lines = [
        f"### T = {length}: {layers}-layer d=256 {heads}-head Llama (vocab {vocab}), "
        f"{samples} x {length} ids, batch {batch}, one thread, {repeats} rounds",
        "",
        "| process | CPU median (s) | CPU / plain | CPU / plain-last | wall median (s) | wall / plain |",
        "|---|---|---|---|---|---|",
    ]
    for name in cmds:
        cpu = statistics.median(r[name][0] for r in rounds)
        wall = statistics.median(r[name][1] for r in rounds)
        to_plain = statistics.median(r[name][0] / r["plain"][0] for r in rounds)
        to_last = statistics.median(r[name][0] / r["plain-last"][0] for r in rounds)
        wall_ratio = statistics.median(r[name][1] / r["plain"][1] for r in rounds)
        lines.append(
            f"| {name} | {cpu:.2f} | {to_plain:.3f}x | {to_last:.3f}x | {wall:.2f} | {wall_ratio:.2f}x |"
        )
    lines += [
        "",
        f"--positions {POSITIONS} vs full: max |Δ Sink_k| {sink:.1e} points, max |Δα_k| {alpha:.1e}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=sorted(CONFIGS), choices=sorted(CONFIGS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab", type=int, default=32000)
    args = parser.parse_args()
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        for length in args.lengths:
            report.append(bench(Path(tmp), length, args.repeats, args.vocab))
            print(report[-1] + "\n", flush=True)
    print("\n\n".join(report))


if __name__ == "__main__":
    main()
