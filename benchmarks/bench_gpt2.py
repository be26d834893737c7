"""sinklab's training steps against a GPT-2-style loop at the same shape, side by side in one process.

    python benchmarks/bench_gpt2.py [--shape nobos|tiny|demo|all] [--reps 5] [--steps 6] [--compile]

The reference is a GPT-2-style decoder written here (not copied from anywhere): learned absolute positions,
pre-LayerNorm with biases, one fused q/k/v projection with bias, causal SDPA, a 4·d GELU (tanh) MLP with
biases, a final LayerNorm and an lm_head tied to the token embedding; trained by a nanoGPT-train.py-style
loop (cross-entropy, backward, clipping at 1, AdamW, the loss read every step). sinklab's side is SinkLM
(its defaults: RoPE, RMSNorm, SwiGLU, no biases, untied lm_head) trained with the trainer's own step parts
(`build_optimizer`, `set_lr`, `masked_loss` with the target mask, clipping). Both read random ids from
memory: data, logging and evaluation are left out (benchmarks/bench_train.py measures the trainer's
overhead against such a loop).

Each shape is timed in `--reps` rounds; a round runs every model for `--steps` steps after a warm-up, in
turn (A B C A B C ...), so background load falls on every model alike; ratios are taken within a round.
Model FLOPs per token: 6 x (matmul parameters, lm_head included, embeddings excluded) + 6 x L x T x d for
the causal attention scores and values (half of PaLM's 12 L T d: only the causal half is computed).
`mfu` is the model FLOPs per second against the measured one-thread fp32 matmul peak (1024^3 GEMM).

sinklab rows: `sinklab (d_ff P)` the preset's width; `equal FLOPs (d_ff E)` the SwiGLU width whose FLOPs
equal the GPT-2 MLP's 8 d^2 (2/3 of 4 d, rounded up to a multiple of 8); `llama (d_ff N)` LLaMA's
8/3 d rounded up to a multiple of 64.
"""

from __future__ import annotations

import argparse
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
}


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


def gpt2_side(shape: dict, lr: float):
    model = GPT2(shape["vocab"], shape["context"], shape["n_layer"], shape["d_model"], shape["n_head"])
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.95),
    )

    def step(forward, x: torch.Tensor, y: torch.Tensor) -> float:
        logits = forward(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    d, f = shape["d_model"], 4 * shape["d_model"]
    matmul = shape["n_layer"] * (4 * d * d + 2 * d * f) + d * shape["vocab"]
    return model, step, matmul


# ---- sinklab -------------------------------------------------------------------------------------------
def sinklab_side(shape: dict, d_ff: int, lr: float):
    from sinklab.model import ModelConfig, SinkLM
    from sinklab.train.config import TrainConfig
    from sinklab.train.evaluate import masked_loss, target_mask
    from sinklab.train.optim import build_optimizer, set_lr

    cfg = ModelConfig(
        vocab_size=shape["vocab"],
        context=shape["context"],
        n_layer=shape["n_layer"],
        n_head=shape["n_head"],
        d_model=shape["d_model"],
        d_ff=d_ff,
    )
    model = SinkLM(cfg)
    tc = replace(TrainConfig(), lr=lr, weight_decay=0.1, grad_clip=1.0)
    opt = build_optimizer(model, tc)
    mask = target_mask(model, shape["context"])

    def step(forward, x: torch.Tensor, y: torch.Tensor) -> float:
        set_lr(opt, lr)
        loss = masked_loss(forward(x), y, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    d = shape["d_model"]
    matmul = shape["n_layer"] * (4 * d * d + 3 * d * d_ff) + d * shape["vocab"]
    return model, step, matmul


def matmul_peak(n: int = 1024, reps: int = 5) -> float:
    """fp32 GEMM FLOP/s on this thread: the best of `reps` n^3 products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(reps):
        t0 = time.process_time()
        a @ b
        best = min(best, time.process_time() - t0)
    return 2 * n**3 / best


def bench_shape(name: str, args) -> dict:
    shape = SHAPES[name]
    d = shape["d_model"]
    equal = 8 * math.ceil(2 * 4 * d / 3 / 8)
    llama = 64 * math.ceil(8 * d / 3 / 64)
    preset = 4 * d  # the tiny model preset's d_ff (512): nobos, tiny and demo keep it
    sides = {"gpt2": gpt2_side(shape, 1e-3)}
    torch.manual_seed(0)
    for label, d_ff in ((f"sinklab (d_ff {preset})", preset), (f"equal FLOPs (d_ff {equal})", equal)):
        sides[label] = sinklab_side(shape, d_ff, 1e-3)
    if llama not in (preset, equal):
        sides[f"llama (d_ff {llama})"] = sinklab_side(shape, llama, 1e-3)
    b, t, v = shape["batch"], shape["context"], shape["vocab"]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, v, (args.steps + args.warmup, b, t + 1), generator=g)
    forwards, compile_s = {}, {}
    for label, (model, step, _) in sides.items():
        model.train()
        forwards[label] = torch.compile(model) if args.compile else model
        t0 = time.process_time()
        for i in range(args.warmup):
            step(forwards[label], ids[i, :, :-1], ids[i, :, 1:])
        compile_s[label] = time.process_time() - t0
    times: dict[str, list[float]] = {label: [] for label in sides}
    for _ in range(args.reps):
        for label, (_, step, _) in sides.items():
            t0 = time.process_time()
            for i in range(args.warmup, args.warmup + args.steps):
                step(forwards[label], ids[i, :, :-1], ids[i, :, 1:])
            times[label].append(time.process_time() - t0)
    tokens = b * t * args.steps
    peak = matmul_peak()
    rows = {}
    for label, (_, _, matmul) in sides.items():
        fpt = 6 * matmul + 6 * shape["n_layer"] * t * d
        tps = [tokens / s for s in times[label]]
        per_token = [gt / tt for gt, tt in zip(times["gpt2"], times[label], strict=True)]
        rows[label] = {
            "tokens_per_s": tps,
            "flops_per_token": fpt,
            "per_token": per_token,
            "per_flop": [r * fpt / rows_fpt(sides, shape) for r in per_token],
            "mfu": [x * fpt / peak for x in tps],
            "warmup_s": compile_s[label],
        }
    return {
        "shape": name,
        **shape,
        "steps": args.steps,
        "reps": args.reps,
        "peak_gflops": peak / 1e9,
        "rows": rows,
    }


def rows_fpt(sides: dict, shape: dict) -> float:
    matmul = sides["gpt2"][2]
    return 6 * matmul + 6 * shape["n_layer"] * shape["context"] * shape["d_model"]


def spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def print_table(result: dict, compiled: bool) -> None:
    print(
        f"\n{result['shape']}: {result['n_layer']} layers, d {result['d_model']}, context {result['context']}, "
        f"batch {result['batch']}, vocab {result['vocab']}; {result['reps']} rounds x {result['steps']} steps, "
        f"one thread, compile {compiled}; matmul peak {result['peak_gflops']:.1f} GFLOP/s"
    )
    print(
        "| model | tokens/s median (min-max) | MFLOP/token | per token vs GPT-2 | per FLOP | of matmul peak |"
    )
    print("|---|---|---|---|---|---|")
    for label, row in result["rows"].items():
        print(
            f"| {label} | {spread(row['tokens_per_s'], ',.0f')} | {row['flops_per_token'] / 1e6:.2f} | "
            f"{spread(row['per_token'], '.3f')} | {spread(row['per_flop'], '.3f')} | "
            f"{spread(row['mfu'], '.1%')} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", default="nobos", choices=[*SHAPES, "all"])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile every model (both sides)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for name in SHAPES if args.shape == "all" else [args.shape]:
        result = bench_shape(name, args)
        print_table(result, args.compile)
        results.append(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
