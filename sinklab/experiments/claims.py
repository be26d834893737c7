"""The paper's claims, each with its number and a verdict computed from our runs.

Verdicts: "reproduced" (our runs show the effect), "contradicted" (the baseline has a sink and our runs show
the opposite effect beyond noise), "not at this scale" (the preconditions did not hold here, e.g. no sink
in the baseline, or the difference is within noise), "missing" (a run it needs has not finished).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPRODUCED = "reproduced"
NOT_AT_SCALE = "not at this scale"
CONTRADICTED = "contradicted"
MISSING = "missing"
VERDICTS = (REPRODUCED, NOT_AT_SCALE, CONTRADICTED, MISSING)

SINK_PRESENT = 5.0  # Sink_1 (%) above which a run counts as having a sink
SINK_ABSENT = 1.0  # ... and below which as having none (the paper's "no sink" runs are 0.0-0.8 %)
NOISE = 2.0  # differences in Sink_k (percentage points) smaller than this are treated as noise
LOSS_CLOSE = 0.3  # nats: "similar loss"
PAPER_SCALES = ("60m", "1b")  # where "this variant has no sink" can contradict "every variant has one"


@dataclass
class RunResult:
    """The final numbers of one finished run (from its metrics.json and log.jsonl)."""

    name: str
    sink_percent: list[float]  # Sink_k at the headline epsilon, k = 1..T
    val_loss: float | None
    slot_sink: float | None = None  # Sink_1* on a sink slot / sink token / sink logit, if the model has one
    sink_by_layer: list[list[float]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # log.jsonl lines
    path: Path | None = None

    def sink(self, k: int = 1) -> float:
        return float(self.sink_percent[k - 1])

    @classmethod
    def load(cls, run_dir: str | Path) -> RunResult | None:
        """None when the run has not finished (no final metrics.json)."""
        run_dir = Path(run_dir)
        metrics_path = run_dir / "metrics.json"
        if not metrics_path.exists():
            return None
        metrics = json.loads(metrics_path.read_text())
        history = []
        log = run_dir / "log.jsonl"
        if log.exists():
            history = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        val_loss = metrics.get("val_loss")
        if val_loss is None and history:
            val_loss = history[-1].get("val_loss")
        return cls(
            name=run_dir.name,
            sink_percent=list(metrics["sink_percent"]),
            val_loss=val_loss,
            slot_sink=_slot_sink(metrics),
            sink_by_layer=metrics.get("sink_percent_by_layer", []),
            history=history,
            path=run_dir,
        )


Results = dict[str, RunResult]


def _slot_sink(metrics: dict[str, Any]) -> float | None:
    """Sink_1* at the headline epsilon, when the model has a sink slot, sink token or sink logit."""
    if metrics.get("slot_sink_percent") is not None:  # a training run's metrics.json
        return float(metrics["slot_sink_percent"])
    slot = metrics.get("slot")  # `sinklab measure`'s metrics.json
    if not slot:
        return None
    return float(slot["sink_percent_by_eps"][f"{float(metrics.get('epsilon', 0.3)):g}"])


@dataclass
class Finding:
    ours: str
    verdict: str


@dataclass(frozen=True)
class Claim:
    id: str
    suite: str
    text: str
    paper: str  # the paper's numbers, as printed
    runs: tuple[str, ...]  # runs it needs
    judge: Callable[[Results, str], Finding]  # (results, scale) -> finding
    plot_runs: tuple[str, ...] = ()

    def evaluate(self, results: Results, scale: str) -> Finding:
        absent = [r for r in self.runs if r not in results]
        if absent:
            return Finding(f"runs not finished: {', '.join(absent)}", MISSING)
        return self.judge(results, scale)


def _fmt(results: Results, *names: str, k: int = 1) -> str:
    return ", ".join(f"{n} {results[n].sink(k):.2f}" for n in names)


def _baseline_ok(results: Results) -> bool:
    return results["default"].sink(1) >= SINK_PRESENT


def _lower(results: Results, low: str, high: str, k: int = 1) -> Finding:
    """Claim: run `low` has a weaker sink on position k than run `high`."""
    ours = _fmt(results, high, low, k=k)
    if not _baseline_ok(results):
        return Finding(ours + " (no sink in the default run)", NOT_AT_SCALE)
    diff = results[high].sink(k) - results[low].sink(k)
    if diff > NOISE:
        return Finding(ours, REPRODUCED)
    if diff < -NOISE:
        return Finding(ours, CONTRADICTED)
    return Finding(ours + " (difference within noise)", NOT_AT_SCALE)


def _all_sink(names: tuple[str, ...]) -> Callable[[Results, str], Finding]:
    """Claim: every run in `names` develops a sink. A variant without one contradicts it only at the paper's
    scales: in short small runs the sink appears late and variants can simply not have reached it yet."""

    def judge(results: Results, scale: str) -> Finding:
        ours = _fmt(results, *names)
        if not _baseline_ok(results):
            return Finding(ours + " (no sink in the default run)", NOT_AT_SCALE)
        weak = [n for n in names if results[n].sink(1) < SINK_PRESENT]
        if not weak:
            return Finding(ours, REPRODUCED)
        absent = [n for n in weak if results[n].sink(1) < SINK_ABSENT]
        if absent and scale in PAPER_SCALES:
            return Finding(ours, CONTRADICTED)
        return Finding(ours + f" (no sink yet in {len(weak)} of {len(names)} at this scale)", NOT_AT_SCALE)

    return judge


def _no_sink(name: str) -> Callable[[Results, str], Finding]:
    """Claim: run `name` has no sink at a loss close to the default's."""

    def judge(results: Results, scale: str) -> Finding:
        run, base = results[name], results["default"]
        gap = None if run.val_loss is None or base.val_loss is None else run.val_loss - base.val_loss
        ours = f"Sink_1 {run.sink(1):.2f} vs default {base.sink(1):.2f}" + (
            f"; loss gap {gap:+.2f} nats" if gap is not None else ""
        )
        if run.sink(1) <= SINK_ABSENT:
            if not _baseline_ok(results):
                return Finding(ours + " (no sink in the default run either)", NOT_AT_SCALE)
            return Finding(ours, REPRODUCED)
        return Finding(ours, CONTRADICTED if run.sink(1) >= SINK_PRESENT else NOT_AT_SCALE)

    return judge


def _sink_exists(results: Results, scale: str) -> Finding:
    s = results["default"].sink(1)
    return Finding(f"Sink_1 {s:.2f}", REPRODUCED if s >= SINK_PRESENT else NOT_AT_SCALE)


def _batch(results: Results, scale: str) -> Finding:
    names = ("batch_x0.5", "default", "batch_x2")
    ours = _fmt(results, *names)
    if not _baseline_ok(results):
        return Finding(ours + " (no sink in the default run)", NOT_AT_SCALE)
    values = [results[n].sink(1) for n in names]
    spread = max(values) - min(values)
    # Smaller batches also see fewer tokens in the same steps; "no effect" allows noise plus a quarter.
    return Finding(ours, REPRODUCED if spread <= NOISE + 0.25 * max(values) else CONTRADICTED)


def _moves_to(name: str, k: int) -> Callable[[Results, str], Finding]:
    """Claim: in run `name` the sink sits on position k, not on the other early positions."""

    def judge(results: Results, scale: str) -> Finding:
        run = results[name]
        firsts = {j: run.sink(j) for j in range(1, 5)}
        ours = ", ".join(f"Sink_{j} {v:.2f}" for j, v in firsts.items())
        if firsts[k] >= SINK_PRESENT and all(firsts[k] > v + NOISE for j, v in firsts.items() if j != k):
            return Finding(ours, REPRODUCED)
        if max(firsts.values()) < SINK_PRESENT:
            return Finding(ours + " (no sink)", NOT_AT_SCALE)
        return Finding(ours, CONTRADICTED)

    return judge


def _too_little_data(results: Results, scale: str) -> Finding:
    """The claim is that the sink does not emerge, not merely that it is weaker; how little is "too little"
    depends on the model, so a sink that is only weaker (or not weaker) is a finding about this scale."""
    run = results["data_1pct"]
    ours = _fmt(results, "default", "data_1pct")
    if not _baseline_ok(results):
        return Finding(ours + " (no sink in the default run)", NOT_AT_SCALE)
    if run.sink(1) <= SINK_ABSENT:
        return Finding(ours, REPRODUCED)
    weaker = results["default"].sink(1) - run.sink(1) > NOISE
    note = " (weaker, but 1 % of the data still gives a sink here)" if weaker else " (1 % is enough here)"
    return Finding(ours + note, NOT_AT_SCALE)


def _random_first(results: Results, scale: str) -> Finding:
    run = results["random_x1"]
    ours = f"Sink_1 {run.sink(1):.2f} (default {results['default'].sink(1):.2f})"
    if not _baseline_ok(results):
        return Finding(ours + " (no sink in the default run)", NOT_AT_SCALE)
    if run.sink(1) >= SINK_PRESENT:
        return Finding(ours, REPRODUCED)
    # A random x1 replaces the BOS of a BOS scale: if the default has no sink without its BOS either, the
    # paper's precondition (a sink on a natural first token) does not hold here.
    no_bos = results.get("no_bos")
    if no_bos is not None and no_bos.sink(1) < SINK_PRESENT:
        note = f" (no sink without a BOS at this scale either: no_bos {no_bos.sink(1):.2f})"
        return Finding(ours + note, NOT_AT_SCALE)
    return Finding(ours, CONTRADICTED)


def _random_second(results: Results, scale: str) -> Finding:
    run = results["random_x2"]
    ours = f"Sink_1 {run.sink(1):.2f}, Sink_2 {run.sink(2):.2f} (default {results['default'].sink(1):.2f})"
    if not _baseline_ok(results):
        return Finding(ours + " (no sink in the default run)", NOT_AT_SCALE)
    if run.sink(1) >= SINK_PRESENT:
        return Finding(ours, REPRODUCED)
    return Finding(ours, CONTRADICTED if run.sink(1) <= SINK_ABSENT else NOT_AT_SCALE)


def _prefix(results: Results, scale: str) -> Finding:
    run = results["prefix_5"]
    inside = [run.sink(j) for j in range(1, 6)]
    after = max(run.sink(j) for j in range(6, 10))
    ours = "Sink_1..5 " + " / ".join(f"{v:.1f}" for v in inside) + f"; max after prefix {after:.1f}"
    if max(inside) >= SINK_PRESENT and max(inside) > after + NOISE:
        return Finding(ours, REPRODUCED)
    return Finding(ours, NOT_AT_SCALE if max([*inside, after]) < SINK_PRESENT else CONTRADICTED)


def _weight_decay_extreme(results: Results, scale: str) -> Finding:
    run = results["wd_5"]
    ours = f"Sink_1 {run.sink(1):.2f}, loss {run.val_loss:.2f} vs default {results['default'].val_loss:.2f}"
    if run.sink(1) <= SINK_ABSENT:
        return Finding(ours, REPRODUCED if _baseline_ok(results) else NOT_AT_SCALE)
    return Finding(ours, CONTRADICTED)


def _bias_absorbs(name: str) -> Callable[[Results, str], Finding]:
    def judge(results: Results, scale: str) -> Finding:
        run = results[name]
        slot = run.slot_sink
        ours = (
            f"Sink_1* {slot:.2f}, Sink_1 {run.sink(1):.2f}"
            if slot is not None
            else f"Sink_1 {run.sink(1):.2f}"
        )
        if not _baseline_ok(results):
            return Finding(ours + " (no sink in the default run)", NOT_AT_SCALE)
        if slot is not None and slot >= SINK_PRESENT and run.sink(1) <= SINK_ABSENT:
            return Finding(ours, REPRODUCED)
        return Finding(ours, CONTRADICTED if run.sink(1) >= SINK_PRESENT else NOT_AT_SCALE)

    return judge


def _scale_up(results: Results, scale: str) -> Finding:
    finding = _no_sink("sigmoid_nonorm")(results, scale)
    if scale != "1b":
        return Finding(finding.ours + f" (at scale {scale}; the claim is about 1B)", NOT_AT_SCALE)
    return finding


POSITION_RUNS = tuple(f"pos_{p}" for p in ("nope", "sinusoidal", "learned", "relative", "alibi"))
MLP_RUNS = tuple(f"mlp_{m}" for m in ("relu", "gelu", "silu", "reglu", "geglu"))

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "sink-emerges",
        "optimization",
        "A softmax LM develops a sink on the first token during pre-training",
        "Sink_1 18.18 % (60M, 20k steps)",
        ("default",),
        _sink_exists,
    ),
    Claim(
        "lr-smaller-weaker",
        "optimization",
        "A smaller learning rate gives a weaker sink",
        "lr 8e-4: 32.23, 4e-4: 18.18, 2e-4: 11.21, 1e-4: 2.90 (20k steps)",
        ("default", "lr_x0.25"),
        lambda r, s: _lower(r, "lr_x0.25", "default"),
    ),
    Claim(
        "lr-larger-stronger",
        "optimization",
        "A larger learning rate gives a stronger sink",
        "lr 8e-4: 32.23 vs 4e-4: 18.18",
        ("default", "lr_x2"),
        lambda r, s: _lower(r, "default", "lr_x2"),
    ),
    Claim(
        "batch-no-effect",
        "optimization",
        "Batch size barely changes the sink",
        "0.25M 16.45, 0.5M 17.19, 1M 18.18, 2M 16.19",
        ("batch_x0.5", "default", "batch_x2"),
        _batch,
    ),
    Claim(
        "data-amount",
        "data",
        "With too little training data the sink does not emerge",
        "50M-100M tokens: Sink_1 < 1 % (Fig. 28)",
        ("default", "data_1pct"),
        _too_little_data,
    ),
    Claim(
        "random-x1",
        "data",
        "A random first token still gets the sink",
        "x1 random: Sink_1 27.03",
        ("default", "random_x1"),
        _random_first,
    ),
    Claim(
        "random-x2",
        "data",
        "A random second token leaves the sink on x1",
        "x2 random: Sink_1 20.99",
        ("default", "random_x2"),
        _random_second,
    ),
    Claim(
        "random-x1x2",
        "data",
        "With x1 and x2 random the sink moves to x2",
        "Sink_2 14.08, Sink_1 1.98",
        ("default", "random_x1x2"),
        _moves_to("random_x1x2", 2),
    ),
    *(
        Claim(
            f"fixed-pos{p}",
            "data",
            f"A fixed token at position {p} takes the sink",
            f"Sink_{p} {v}",
            (f"fixed_pos{p}",),
            _moves_to(f"fixed_pos{p}", p),
        )
        for p, v in ((1, 74.11), (2, 69.03), (3, 69.64))
    ),
    Claim(
        "wd-moderate",
        "loss",
        "Moderate weight decay strengthens the sink",
        "γ 0: 15.20, 0.1: 18.18, 0.5: 41.08",
        ("wd_0", "wd_0.5", "default"),
        lambda r, s: _lower(r, "wd_0", "wd_0.5"),
    ),
    Claim(
        "wd-extreme",
        "loss",
        "Extreme weight decay removes the sink and hurts the loss",
        "γ 5.0: Sink_1 0.01, loss 5.24",
        ("wd_5", "default"),
        _weight_decay_extreme,
    ),
    Claim(
        "prefix-lm",
        "loss",
        "With a prefix LM the sink sits on a prefix token",
        "p = 5: sink inside the prefix",
        ("default", "prefix_5"),
        _prefix,
    ),
    Claim(
        "window-small",
        "loss",
        "A small attention window prevents the sink",
        "w < 256: weak or no sink",
        ("default", "window_8"),
        lambda r, s: _lower(r, "window_8", "default"),
    ),
    Claim(
        "positions",
        "architecture",
        "Every positional embedding develops a sink",
        "NoPE 20.35, abs 32.73, learned 33.13, relative 35.53, ALiBi 20.78, RoPE 18.18",
        (*POSITION_RUNS, "default"),
        _all_sink(POSITION_RUNS),
    ),
    Claim(
        "ffn",
        "architecture",
        "Every FFN type develops a sink",
        "ReLU 16.90, GeLU 14.76, Swish 17.89, ReGLU 13.88, GeGLU 17.86, SwiGLU 18.18",
        (*MLP_RUNS, "default"),
        _all_sink(MLP_RUNS),
    ),
    Claim(
        "post-ln",
        "architecture",
        "Post-LN models develop a sink too",
        "Sink_1 13.54",
        ("post_ln", "default"),
        _all_sink(("post_ln",)),
    ),
    Claim(
        "heads",
        "architecture",
        "Every number of heads develops a sink",
        "H 1: 19.50, 2: 12.95, 4: 10.68, 8: 18.18, addition 21.76",
        ("heads_1", "heads_2", "heads_addition", "default"),
        _all_sink(("heads_1", "heads_2", "heads_addition")),
    ),
    Claim(
        "k-bias",
        "architecture",
        "A learnable key bias (even with zero value) takes the sink off x1",
        "K biases: Sink_1* 73.34, Sink_1 0.00",
        ("kv_bias_k", "default"),
        _bias_absorbs("kv_bias_k"),
    ),
    Claim(
        "kv-bias",
        "architecture",
        "Learnable key and value biases take the sink off x1",
        "KV biases: Sink_1* 72.76, Sink_1 0.04",
        ("kv_bias_kv", "default"),
        _bias_absorbs("kv_bias_kv"),
    ),
    Claim(
        "sink-token",
        "architecture",
        "A learnable sink token takes the sink off x1",
        "sink token: Sink_1* 74.12, Sink_1 0.00",
        ("sink_token", "default"),
        _bias_absorbs("sink_token"),
    ),
    Claim(
        "v-bias",
        "architecture",
        "A value bias alone does not remove the sink",
        "V biases: Sink_1 17.53",
        ("kv_bias_v", "default"),
        _all_sink(("kv_bias_v",)),
    ),
    Claim(
        "sigmoid-nonorm",
        "architecture",
        "Sigmoid attention without normalisation has no sink at similar loss",
        "Sink_1* 0.44, loss 3.70 vs 3.73",
        ("sigmoid_nonorm", "default"),
        _no_sink("sigmoid_nonorm"),
    ),
    Claim(
        "sigmoid-norm",
        "architecture",
        "Normalised sigmoid attention keeps the sink",
        "Sink_1 30.24",
        ("sigmoid_norm", "default"),
        _all_sink(("sigmoid_norm",)),
    ),
    Claim(
        "elu-nonorm",
        "architecture",
        "elu+1 attention without normalisation has no sink",
        "Sink_1* 0.80, loss 3.69",
        ("elu_nonorm", "default"),
        _no_sink("elu_nonorm"),
    ),
    Claim(
        "linear-nonorm",
        "architecture",
        "Identity-kernel attention without normalisation has no sink",
        "Sink_1* 0.00, loss 3.99",
        ("linear_identity_nonorm", "default"),
        _no_sink("linear_identity_nonorm"),
    ),
    Claim(
        "mlp-kernel",
        "architecture",
        "MLP-kernel attention has no sink, normalised or not",
        "norm 0.19*, no norm 0.74*",
        ("linear_mlp_norm", "linear_mlp_nonorm", "default"),
        lambda r, s: _combine(_no_sink("linear_mlp_norm")(r, s), _no_sink("linear_mlp_nonorm")(r, s)),
    ),
    Claim(
        "scale-1b",
        "scale-up",
        "Sigmoid without normalisation has no sink at 1B either",
        "1B: softmax 45.11 % / loss 3.07; sigmoid 2.46 %* / 3.10",
        ("default", "sigmoid_nonorm"),
        _scale_up,
    ),
)


def _combine(*findings: Finding) -> Finding:
    ours = "; ".join(f.ours for f in findings)
    for verdict in (CONTRADICTED, MISSING, NOT_AT_SCALE):
        if any(f.verdict == verdict for f in findings):
            return Finding(ours, verdict)
    return Finding(ours, REPRODUCED)


def claims_for(suites: list[str]) -> list[Claim]:
    return [c for c in CLAIMS if c.suite in suites]
