"""sinklab's training steps against a GPT-2-style loop at the same shape, side by side in one process.

    python benchmarks/bench_gpt2.py [--shape nobos|tiny|demo|all] [--reps 5] [--steps 6] [--compile]
    python benchmarks/bench_gpt2.py --device cuda --shape 60m [--compile]     # the prepared GPU check

The reference is a GPT-2-style decoder written here (not copied from anywhere): learned absolute positions,
pre-LayerNorm with biases, one fused q/k/v projection with bias, causal SDPA, a 4·d GELU (tanh) MLP with
biases, a final LayerNorm and an lm_head tied to the token embedding; trained by a nanoGPT-train.py-style
loop (cross-entropy, backward, clipping at 1, AdamW, the loss read every step). sinklab's side is SinkLM
(its defaults: RoPE, RMSNorm, SwiGLU, no biases, untied lm_head) trained with the trainer's own step parts
(`build_optimizer`, `set_lr`, `training_loss` with the target mask, i.e. the head fused into the loss,
clipping). Both read random ids from memory: data, logging and evaluation are left out
(benchmarks/bench_train.py measures the trainer's overhead against such a loop).

Each shape is timed in `--reps` rounds; a round runs every model for `--steps` steps after a warm-up, in
turn (A B C A B C ...), so background load falls on every model alike; ratios are taken within a round.
Model FLOPs per token: 6 x (matmul parameters, lm_head included, embeddings excluded) + 6 x L x T x d for
the causal attention scores and values (half of PaLM's 12 L T d: only the causal half is computed).
On the CPU (one thread) time is the process's CPU time, which the other processes of a shared machine do
not inflate (caches and memory bandwidth stay shared); `mfu` is the model FLOPs per second against the
measured one-thread fp32 matmul peak (1024^3 GEMM). On CUDA both sides train under bf16 autocast with fused
AdamW (sinklab's trainer does so on CUDA), time is wall clock after a synchronize, and `mfu` is against the
card's dense bf16 peak from its data sheet (CARD_PEAK_TFLOPS; `--peak-tflops` for another card) and against
a measured 8192^3 bf16 GEMM; the script also says whether the flash SDPA kernel accepts sinklab's attention.

sinklab rows: `sinklab (d_ff P)` the preset's width; `equal FLOPs (d_ff E)` the SwiGLU width whose FLOPs
equal the GPT-2 MLP's 8 d^2 (2/3 of 4 d, rounded up to a multiple of 8); `llama (d_ff N)` LLaMA's
8/3 d rounded up to a multiple of 64.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

# The nobos, tiny and demo run presets' shapes (layers, width, heads, context, batch, vocabulary).
SHAPES = {
    "nobos": {"n_layer": 4, "d_model": 128, "n_head": 4, "context": 256, "batch": 8, "vocab": 2048},
    "tiny": {"n_layer": 4, "d_model": 128, "n_head": 4, "context": 64, "batch": 16, "vocab": 2048},
    "demo": {"n_layer": 2, "d_model": 128, "n_head": 4, "context": 64, "batch": 8, "vocab": 1024},
    # GPU shapes: the paper's 60m model (vocab of the 60m run preset) and the small preset.
    "60m": {"n_layer": 10, "d_model": 768, "n_head": 8, "context": 2048, "batch": 16, "vocab": 32768},
    "small": {"n_layer": 6, "d_model": 384, "n_head": 6, "context": 512, "batch": 32, "vocab": 8192},
}
CPU_SHAPES = ("nobos", "tiny", "demo")

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s.
CARD_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 756.0,  # an H100 of unknown form factor: the lower (PCIe) figure
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "RTX 4090": 165.0,
}


def card_peak(name: str) -> float | None:
    """The data-sheet bf16 peak of the card called `name` (the longest matching key), FLOP/s."""
    keys = [k for k in CARD_PEAK_TFLOPS if k in name]
    return CARD_PEAK_TFLOPS[max(keys, key=len)] * 1e12 if keys else None


# ---- the GPT-2-style reference -------------------------------------------------------------------------
class GPT2Block(nn.Module):
    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.attn_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.c_attn(self.ln_1(x)).view(b, t, 3, self.n_head, d // self.n_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, vocab: int, context: int, n_layer: int, d: int, n_head: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(GPT2Block(d, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as GPT-2
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # GPT-2's residual projections: scaled by depth
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer))
            elif p.dim() == 2:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.wte(ids) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def gpt2_side(shape: dict, lr: float, device: torch.device):
    model = GPT2(shape["vocab"], shape["context"], shape["n_layer"], shape["d_model"], shape["n_head"])
    model.to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.95),
        fused=True if device.type == "cuda" else None,
    )

    def step(forward, x: torch.Tensor, y: torch.Tensor) -> float:
        with autocast(device):
            logits = forward(x)
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    d, f = shape["d_model"], 4 * shape["d_model"]
    matmul = shape["n_layer"] * (4 * d * d + 2 * d * f) + d * shape["vocab"]
    return model, step, matmul


# ---- sinklab -------------------------------------------------------------------------------------------
def sinklab_side(shape: dict, d_ff: int, lr: float, device: torch.device, package: str = "sinklab"):
    """`package`: "sinklab", or the import name of an older sinklab copy (see --before)."""
    model_mod = importlib.import_module(f"{package}.model")
    ModelConfig, SinkLM = model_mod.ModelConfig, model_mod.SinkLM
    TrainConfig = importlib.import_module(f"{package}.train.config").TrainConfig
    evaluate = importlib.import_module(f"{package}.train.evaluate")
    autocast_for, masked_loss, target_mask = evaluate.autocast_for, evaluate.masked_loss, evaluate.target_mask
    # the trainer's own loss: the head fused into it where the package has that (sinklab.model.loss)
    training_loss = getattr(evaluate, "training_loss", None)
    optim = importlib.import_module(f"{package}.train.optim")
    build_optimizer, set_lr = optim.build_optimizer, optim.set_lr

    cfg = ModelConfig(
        vocab_size=shape["vocab"],
        context=shape["context"],
        n_layer=shape["n_layer"],
        n_head=shape["n_head"],
        d_model=shape["d_model"],
        d_ff=d_ff,
    )
    model = SinkLM(cfg).to(device)
    tc = replace(TrainConfig(), lr=lr, weight_decay=0.1, grad_clip=1.0)
    opt = build_optimizer(model, tc)  # fused AdamW on CUDA
    mask = target_mask(model, shape["context"]).to(device)
    amp = autocast_for(device, tc.precision)  # bf16 on CUDA, nothing on the CPU

    def step(forward, x: torch.Tensor, y: torch.Tensor) -> float:
        set_lr(opt, lr)
        with amp():
            if training_loss is not None:
                loss = training_loss(forward, torch.cat([x, y[:, -1:]], dim=1), mask)
            else:
                loss = masked_loss(forward(x), y, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    d = shape["d_model"]
    matmul = shape["n_layer"] * (4 * d * d + 3 * d * d_ff) + d * shape["vocab"]
    return model, step, matmul


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def flash_accepts_sinklab(shape: dict, device: torch.device) -> str:
    """Whether sinklab's default attention runs on the flash SDPA kernel (bf16, causal, no mask)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from sinklab.model import ModelConfig, SinkLM

    cfg = ModelConfig(
        vocab_size=shape["vocab"],
        context=shape["context"],
        n_layer=1,
        n_head=shape["n_head"],
        d_model=shape["d_model"],
    )
    model = SinkLM(cfg).to(device)
    ids = torch.randint(0, shape["vocab"], (2, shape["context"]), device=device)
    try:
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), autocast(device):
            model(ids).float().sum().backward()
    except RuntimeError as err:
        return f"no ({str(err).splitlines()[0][:160]})"
    return "yes"


# ---- timing --------------------------------------------------------------------------------------------
class Clock:
    """CPU: the process's CPU time (one thread); CUDA: wall clock after a synchronize."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()


def matmul_peak(device: torch.device, reps: int = 5) -> float:
    """Measured GEMM FLOP/s: fp32 1024^3 on the CPU (this thread), bf16 8192^3 on CUDA; the best of reps."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    clock = Clock(device)
    a @ b
    best = math.inf
    for _ in range(reps):
        t0 = clock()
        a @ b
        best = min(best, clock() - t0)
    return 2 * n**3 / best


def widths(d: int) -> dict[str, int]:
    """sinklab's d_ff rows: the presets' 4 d, equal FLOPs with GPT-2's MLP, LLaMA's 8/3 d."""
    preset, equal, llama = 4 * d, 8 * math.ceil(2 * 4 * d / 3 / 8), 64 * math.ceil(8 * d / 3 / 64)
    rows = {f"sinklab (d_ff {preset})": preset, f"equal FLOPs (d_ff {equal})": equal}
    if llama not in (preset, equal):
        rows[f"llama (d_ff {llama})"] = llama
    return rows


def bench_shape(name: str, args, device: torch.device) -> dict:
    shape = SHAPES[name]
    torch.manual_seed(0)
    sides = {"gpt2": gpt2_side(shape, 1e-3, device)}
    for label, d_ff in widths(shape["d_model"]).items():
        sides[label] = sinklab_side(shape, d_ff, 1e-3, device)
    if args.before:
        equal = next(d for label, d in widths(shape["d_model"]).items() if label.startswith("equal"))
        sides[f"{args.before} (d_ff {equal})"] = sinklab_side(shape, equal, 1e-3, device, args.before)
    b, t, v = shape["batch"], shape["context"], shape["vocab"]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, v, (args.steps + args.warmup, b, t + 1), generator=g).to(device)
    clock = Clock(device)
    forwards, warmup_s = {}, {}
    for label, (model, step, _) in sides.items():
        model.train()
        compiled = args.compile == "both" or (args.compile == "sinklab" and label != "gpt2")
        forwards[label] = torch.compile(model) if compiled else model
        t0 = clock()
        for i in range(args.warmup):  # the compilation, when --compile, happens here
            step(forwards[label], ids[i, :, :-1], ids[i, :, 1:])
        warmup_s[label] = clock() - t0
    times: dict[str, list[float]] = {label: [] for label in sides}
    for _ in range(args.reps):
        for label, (_, step, _) in sides.items():
            t0 = clock()
            for i in range(args.warmup, args.warmup + args.steps):
                step(forwards[label], ids[i, :, :-1], ids[i, :, 1:])
            times[label].append(clock() - t0)
    tokens = b * t * args.steps
    measured = matmul_peak(device)
    peak = measured
    card = None
    if device.type == "cuda":
        card = torch.cuda.get_device_name(device)
        peak = args.peak_tflops * 1e12 if args.peak_tflops else card_peak(card) or measured
    attention = 6 * shape["n_layer"] * t * shape["d_model"]  # causal scores and values, fwd + bwd
    gpt2_fpt = 6 * sides["gpt2"][2] + attention
    rows = {}
    for label, (_, _, matmul) in sides.items():
        fpt = 6 * matmul + attention
        tps = [tokens / s for s in times[label]]
        per_token = [g2 / ours for g2, ours in zip(times["gpt2"], times[label], strict=True)]
        rows[label] = {
            "tokens_per_s": tps,
            "flops_per_token": fpt,
            "per_token": per_token,
            "per_flop": [r * fpt / gpt2_fpt for r in per_token],
            "per_token_best": min(times["gpt2"]) / min(times[label]),  # best round against best round
            "mfu": [x * fpt / peak for x in tps],
            "of_measured_matmul": [x * fpt / measured for x in tps],
            "warmup_s": warmup_s[label],
        }
    result = {
        "shape": name,
        **shape,
        "device": card or "cpu, one thread",
        "compile": args.compile,
        "steps": args.steps,
        "reps": args.reps,
        "peak_tflops": peak / 1e12,
        "measured_matmul_tflops": measured / 1e12,
        "rows": rows,
    }
    if device.type == "cuda":
        result["flash_sdpa"] = flash_accepts_sinklab(shape, device)
        result["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def print_table(r: dict) -> None:
    peak = "matmul peak" if r["device"].startswith("cpu") else "card peak"
    print(
        f"\n{r['shape']}: {r['n_layer']} layers, d {r['d_model']}, context {r['context']}, "
        f"batch {r['batch']}, vocab {r['vocab']}; {r['reps']} rounds x {r['steps']} steps on {r['device']}, "
        f"compile {r['compile']}; {peak} {r['peak_tflops'] * 1e3:.1f} GFLOP/s "
        f"(measured GEMM {r['measured_matmul_tflops'] * 1e3:.1f})"
    )
    if "flash_sdpa" in r:
        print(
            f"flash SDPA accepts sinklab's attention: {r['flash_sdpa']}; "
            f"peak memory {r['max_memory_gib']:.1f} GiB"
        )
    print(
        "| model | tokens/s median (min-max) | MFLOP/token | per token vs GPT-2 | best vs best | per FLOP "
        f"| of {peak} | warm-up s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, row in r["rows"].items():
        print(
            f"| {label} | {spread(row['tokens_per_s'], ',.0f')} | {row['flops_per_token'] / 1e6:.2f} | "
            f"{spread(row['per_token'], '.3f')} | {row['per_token_best']:.3f} | "
            f"{spread(row['per_flop'], '.3f')} | "
            f"{spread(row['mfu'], '.1%')} | {row['warmup_s']:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shape", default=None, help=f"{', '.join(SHAPES)} or all (default: nobos; 60m on cuda)"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--compile",
        nargs="?",
        const="both",
        default="none",
        choices=["none", "both", "sinklab"],
        help="torch.compile both sides, or sinklab's only (train.compile against the eager GPT-2 loop)",
    )
    parser.add_argument(
        "--before",
        help="also time an older sinklab at equal FLOPs, imported under this name: e.g. `git archive REV "
        "sinklab | tar -x -C /tmp/old`, rename /tmp/old/sinklab to sinklab_old and its `sinklab` imports "
        "to `sinklab_old`, then PYTHONPATH=/tmp/old ... --before sinklab_old",
    )
    parser.add_argument("--peak-tflops", type=float, help="the card's dense bf16 peak (unknown cards)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    default = "60m" if device.type == "cuda" else "nobos"
    names = (CPU_SHAPES if device.type == "cpu" else ("small", "60m")) if args.shape == "all" else None
    results = []
    for name in names or [args.shape or default]:
        if name not in SHAPES:
            parser.error(f"unknown shape {name!r}; accepted: {', '.join(SHAPES)}, all")
        result = bench_shape(name, args, device)
        print_table(result)
        results.append(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
