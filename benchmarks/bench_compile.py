"""`train.compile` on the CPU: eager against torch.compile'd training steps, per variant family, one thread.

    python benchmarks/bench_compile.py [--shape demo|nobos] [--reps 8] [--families default,sigmoid,...]

For each family, a SinkLM of the shape is trained as the trainer does (the forward compiled, the loss,
backward, clipping and AdamW outside it): the compilation's wall time (the first steps), then `--reps`
rounds of one eager and one compiled step on the same batch, in turn; the speed-up is the median of the
per-round ratios of process CPU time. A family whose compiled forward raises is reported with the error
(the trainer would then stop at its first step: leave `train.compile` off for it).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

FAMILIES: dict[str, dict] = {
    "default": {},  # softmax on the SDPA path, RoPE, RMSNorm, SwiGLU
    "sigmoid": {"attention": {"kernel": "sigmoid"}},  # blockwise path (checkpointed query blocks)
    "linear_scan": {"attention": {"kernel": "linear_elu", "normalize": False}},
    "sink_logit": {"attention": {"kernel": "sink_logit"}},  # SDPA with an extra-logit slot
    "window": {"attention": {"mask": "window", "window": 16}},  # SDPA with a boolean mask
    "gate": {"attention": {"gate": True}},
    "kv_bias": {"kv_bias": "kv"},
    "sink_token": {"kv_bias": "sink_token"},
    "alibi": {"position": "alibi"},  # a float score bias
    "layernorm_post": {"norm": "layernorm", "norm_position": "post"},
    "geglu": {"mlp": "geglu"},
}
SHAPES = {
    "demo": {"n_layer": 2, "d_model": 128, "n_head": 4, "context": 64, "batch": 8, "vocab": 1024},
    "nobos": {"n_layer": 4, "d_model": 128, "n_head": 4, "context": 256, "batch": 8, "vocab": 2048},
}


def trainer_step(model, forward, optimizer, mask):
    from sinklab.train.evaluate import training_loss

    def step(ids: torch.Tensor) -> float:
        loss = training_loss(forward, ids, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def bench_family(name: str, options: dict, shape: dict, reps: int) -> dict:
    from sinklab.model import ModelConfig, SinkLM
    from sinklab.train.config import TrainConfig
    from sinklab.train.evaluate import target_mask
    from sinklab.train.optim import build_optimizer

    cfg = ModelConfig(
        vocab_size=shape["vocab"],
        context=shape["context"],
        n_layer=shape["n_layer"],
        n_head=shape["n_head"],
        d_model=shape["d_model"],
        d_ff=512,
        **copy.deepcopy(options),
    )
    torch.manual_seed(0)
    eager_model = SinkLM(cfg)
    compiled_model = copy.deepcopy(eager_model)
    mask = target_mask(eager_model, shape["context"])
    tc = TrainConfig(lr=1e-3)
    eager = trainer_step(eager_model, eager_model, build_optimizer(eager_model, tc), mask)
    compiled_forward = torch.compile(compiled_model)
    compiled = trainer_step(compiled_model, compiled_forward, build_optimizer(compiled_model, tc), mask)
    ids = torch.randint(0, shape["vocab"], (shape["batch"], shape["context"] + 1))
    t0 = time.perf_counter()
    try:
        losses = [compiled(ids) for _ in range(2)]
    except Exception as err:
        return {"family": name, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    compile_s = time.perf_counter() - t0
    eager_losses = [eager(ids) for _ in range(2)]
    ratios, eager_t, compiled_t = [], [], []
    for _ in range(reps):
        t0 = time.process_time()
        eager(ids)
        t1 = time.process_time()
        compiled(ids)
        t2 = time.process_time()
        eager_t.append(t1 - t0)
        compiled_t.append(t2 - t1)
        ratios.append((t1 - t0) / (t2 - t1))
    return {
        "family": name,
        "compile_s": compile_s,
        "eager_ms": statistics.median(eager_t) * 1e3,
        "compiled_ms": statistics.median(compiled_t) * 1e3,
        "speedup": statistics.median(ratios),
        "speedup_min": min(ratios),
        "speedup_max": max(ratios),
        "loss_diff": max(abs(a - b) for a, b in zip(losses, eager_losses, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", default="demo", choices=list(SHAPES))
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    shape = SHAPES[args.shape]
    print(f"shape {args.shape}: {shape}; one thread; {args.reps} rounds")
    print(
        "| family | compile (wall s) | eager ms/step | compiled ms/step | speed-up median (min-max) "
        "| max |Δloss| |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.families.split(","):
        r = bench_family(name, FAMILIES[name], shape, args.reps)
        if "error" in r:
            print(f"| {name} | fails: {r['error']} | | | | |", flush=True)
            continue
        print(
            f"| {name} | {r['compile_s']:.1f} | {r['eager_ms']:.1f} | {r['compiled_ms']:.1f} | "
            f"{r['speedup']:.2f} ({r['speedup_min']:.2f}-{r['speedup_max']:.2f}) | {r['loss_diff']:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
