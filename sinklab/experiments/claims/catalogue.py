"""The paper's claims as data: one entry each, owning its judged quantity, its runs, the paper's values of
that quantity and its flags. Adding a claim is one entry here (plus a run spec in suites.py if it needs a
new run).

One criterion decides which claims a BOS scale cannot test (`natural_first_token`): a claim whose variant
changes what the first positions hold or what a query sees of them (the amount of text, random tokens at the
start, a prefix, an attention window). With the same BOS at x1 of every sequence the outcome of those is
fixed by the BOS itself. Every other claim (optimiser, positions, FFN, LN, heads, biases, sink token,
kernels) is judged at a BOS scale, where the BOS's sink is the model's sink.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sinklab.experiments.claims import judges as j
from sinklab.experiments.claims.judges import Finding, Judge
from sinklab.experiments.claims.results import (
    SINK_1,
    WINDOW_SINK,
    Quantity,
    Results,
    first_value_norm_ratio,
    massive_activation_ratio,
    max_sink,
    sink_k,
    slot_sink,
)
from sinklab.experiments.claims.rule import MISSING, NOT_AT_SCALE, PAPER_SCALES, UNTESTED, Rule
from sinklab.experiments.suites import (
    MLP_RUNS,
    POSITION_RUNS,
    SIGMOID_ROBUSTNESS,
    wd_run,
    window_run,
)

BOS_UNTESTED = (
    "needs a natural first token: the variant changes what the first positions hold or what a query sees "
    "of them, and every sequence at this scale starts with the same BOS, which decides that by itself"
)
NOBOS_UNTESTED = "needs a natural first token; this no-BOS CPU scale grew no sink in any default seed"


@dataclass(frozen=True)
class Claim:
    id: str
    suite: str
    text: str
    paper: str  # the paper's numbers, as printed
    runs: tuple[str, ...]  # runs it needs
    judge: Judge
    metric: Quantity = SINK_1  # the judged quantity: the verdict and both panels of its figure read it
    paper_values: tuple[tuple[str, float], ...] = ()  # the paper's value of `metric`, per run
    natural_first_token: bool = False  # untested at a BOS scale (the criterion in the module docstring)
    needs_default_sink: bool = True  # judged only when a default seed has a sink (all but sink-emerges)
    figure: str = "bars"  # "bars": the metric per run and during training; "lengths": Sink_1 against T

    def evaluate(self, results: Results, scale: str, bos: bool = False) -> Finding:
        return self.evaluate_with(Rule(results, scale, bos=bos))

    def evaluate_with(self, rule: Rule) -> Finding:
        untested = self.untested_because(rule) if self.natural_first_token else None
        absent = [r for r in self.runs if r not in rule.results]
        if not absent:
            finding = self.judge(rule)
            if untested is not None and finding.verdict != MISSING:
                return Finding(finding.ours, UNTESTED, untested)
            return finding
        # Some verdicts need none of the missing runs (a sweep skips the runs that could not count).
        ours = f"runs not trained: {', '.join(absent)}"
        if trained := [r for r in self.runs if r in rule.results and r != "default"]:
            ours += "; " + j.ours_text(rule, [(r, self.metric) for r in trained])
        if untested is not None and (rule.bos or rule.baseline is not None):
            return Finding(ours, UNTESTED, untested)
        cpu_default = rule.scale not in PAPER_SCALES and "default" not in absent
        if self.needs_default_sink and cpu_default and not rule.default_has_sink:
            return Finding(f"default {j.stat_text(rule, 'default')}; {ours}", NOT_AT_SCALE, j.DEFAULT_NO_SINK)
        return Finding(ours, MISSING, f"runs not finished: {', '.join(absent)}")

    @staticmethod
    def untested_because(rule: Rule) -> str | None:
        """Why a claim about a natural first token cannot be tested at this scale, or None if it can."""
        if rule.scale in PAPER_SCALES:
            return None
        if rule.bos:
            return BOS_UNTESTED
        if rule.baseline is not None and not rule.default_has_sink:
            return NOBOS_UNTESTED
        return None


def _optimization(control: str) -> list[Claim]:
    return [
        Claim(
            "sink-emerges",
            "optimization",
            "A softmax LM develops a sink on the first token during pre-training",
            "Sink_1 18.18 % (60M, 20k steps)",
            ("default",),
            j.emerges,
            paper_values=(("default", 18.18),),
            needs_default_sink=False,
        ),
        Claim(
            "eps-length",
            "optimization",
            "Sink_1 falls as the evaluation length T grows, at every ε, beyond a sinkless control's fall",
            "Fig. 3 (GPT2-XL, LLaMA2-7B, LLaMA3-8B; ε 0.2-0.5; values in the figure only)",
            ("default", control),
            j.falls_with_length(control),
            figure="lengths",
        ),
        Claim(
            "lr-smaller-weaker",
            "optimization",
            "A smaller learning rate gives a weaker sink",
            "lr 8e-4: 32.23, 4e-4: 18.18, 2e-4: 11.21, 1e-4: 2.90 (20k steps)",
            ("default", "lr_x0.25"),
            j.stronger("default", "lr_x0.25"),
            paper_values=(("default", 18.18), ("lr_x0.25", 2.90)),
        ),
        Claim(
            "lr-larger-stronger",
            "optimization",
            "A larger learning rate gives a stronger sink",
            "lr 8e-4: 32.23 vs 4e-4: 18.18",
            ("default", "lr_x2"),
            j.stronger("lr_x2", "default"),
            paper_values=(("default", 18.18), ("lr_x2", 32.23)),
        ),
        Claim(
            "lr-steps-matched",
            "optimization",
            "A smaller learning rate gives a weaker sink even with lr x steps held fixed",
            "4e-4 x 20k: 18.18 vs 2e-4 x 40k: 16.81 (Table 9)",
            ("default", "lr_x0.5_steps_x2"),
            j.stronger("default", "lr_x0.5_steps_x2"),
            paper_values=(("default", 18.18), ("lr_x0.5_steps_x2", 16.81)),
        ),
        Claim(
            "batch-no-effect",
            "optimization",
            "Batch size barely changes the sink",
            "0.25M 16.45, 0.5M 17.19, 1M 18.18, 2M 16.19",
            ("default", "batch_x0.5", "batch_x2"),
            j.same(("default", "batch_x0.5", "batch_x2")),
            paper_values=(("default", 18.18), ("batch_x0.5", 17.19), ("batch_x2", 16.19)),
        ),
    ]


def _data_random() -> list[Claim]:
    return [
        Claim(
            "data-amount",
            "data",
            "With too little training data the sink does not emerge",
            "50M-100M tokens: Sink_1 < 1 % (Fig. 28)",
            ("default", "data_1pct"),
            j.too_little_data("data_1pct"),
            natural_first_token=True,
        ),
        Claim(
            "data-less-weaker",
            "data",
            "Less training data gives a weaker sink",
            "5B > 2.5B > 500M tokens (Fig. 5 right, figure only)",
            ("default", "data_10pct"),
            j.stronger("default", "data_10pct"),
            natural_first_token=True,
        ),
        Claim(
            "random-x1",
            "data",
            "A random first token still gets the sink",
            "x1 random: Sink_1 27.03",
            ("default", "random_x1"),
            j.random_first,
            paper_values=(("random_x1", 27.03),),
            natural_first_token=True,
        ),
        Claim(
            "random-x2",
            "data",
            "A random second token leaves the sink on x1",
            "x2 random: Sink_1 20.99",
            ("default", "random_x2"),
            j.present(("random_x2",)),
            paper_values=(("random_x2", 20.99),),
            natural_first_token=True,
        ),
        Claim(
            "random-x1x2",
            "data",
            "With x1 and x2 random the sink moves to x2",
            "Sink_2 14.08, Sink_1 1.98",
            ("default", "random_x1x2"),
            j.sink_on("random_x1x2", 2, (1, 3, 4)),
            metric=sink_k(2),
            paper_values=(("random_x1x2", 14.08),),
            natural_first_token=True,
        ),
        Claim(
            "random-more",
            "data",
            "More random positions remove the sink",
            "'tends to remove the sink' (no numbers)",
            ("default", "random_x1to4"),
            j.stronger("default", "random_x1to4", SINK_1, max_sink(range(1, 9))),
            natural_first_token=True,
        ),
    ]


def _data_fixed() -> list[Claim]:
    return [
        Claim(
            f"fixed-pos{p}",
            "data",
            f"A fixed token at position {p} takes the sink",
            f"Sink_{p} {v}",
            ("default", f"fixed_pos{p}"),
            j.sink_on(f"fixed_pos{p}", p, tuple(k for k in (1, 2, 3, 4) if k != p)),
            metric=sink_k(p),
            paper_values=((f"fixed_pos{p}", v),),
        )
        for p, v in ((1, 74.11), (2, 69.03), (3, 69.64))
    ]


def _loss(windows: tuple[int, int], default_wd: float) -> list[Claim]:
    small, large = windows
    wd0, wd_mod, wd_ext = (wd_run(g, default_wd) for g in (0.0, 0.5, 5.0))
    return [
        Claim(
            "wd-zero-sink",
            "loss",
            "Without weight decay the sink still forms",
            "γ 0: Sink_1 15.20",
            ("default", wd0),
            j.present((wd0,)),
            paper_values=((wd0, 15.20),),
        ),
        Claim(
            "wd-moderate",
            "loss",
            "Moderate weight decay (0.5) gives a stronger sink than none",
            "γ 0: 15.20, 0.1: 18.18, 0.5: 41.08",
            ("default", wd0, wd_mod),
            j.stronger(wd_mod, wd0),
            paper_values=((wd0, 15.20), (wd_mod, 41.08)),
        ),
        Claim(
            "wd-extreme",
            "loss",
            "Extreme weight decay (5.0) removes the sink and hurts the loss",
            "γ 5.0: Sink_1 0.01, loss 5.24 vs 3.73",
            ("default", wd_ext),
            j.absent((wd_ext,), loss="worse"),
            paper_values=((wd_ext, 0.01),),
        ),
        Claim(
            "prefix-lm",
            "loss",
            "With a prefix LM the sink sits on a prefix token",
            "p = 5: sink inside the prefix (Fig. 5 middle)",
            ("default", "prefix_5"),
            j.prefix("prefix_5", 5),
            metric=max_sink(range(1, 6)),
            natural_first_token=True,
        ),
        Claim(
            "window-small",
            "loss",
            f"A small attention window (w = {small}) prevents the sink",
            "w < 256: weak or no sink (Fig. 6)",
            ("default", window_run(small)),
            j.absent((window_run(small),), WINDOW_SINK),
            metric=WINDOW_SINK,
            natural_first_token=True,
        ),
        Claim(
            "window-large",
            "loss",
            f"A large attention window (w = {large}) keeps a sink on the absolute first token",
            "w >= 256: sink on x1 (Fig. 6)",
            ("default", window_run(large)),
            j.present((window_run(large),), WINDOW_SINK),
            metric=WINDOW_SINK,
            natural_first_token=True,
        ),
    ]


POSITION_PAPER = (20.35, 32.73, 33.13, 35.53, 20.78)
MLP_PAPER = (16.90, 14.76, 17.89, 13.88, 17.86)


def _architecture_parts() -> list[Claim]:
    heads = ("heads_1", "heads_2", "heads_addition")
    return [
        Claim(
            "positions",
            "architecture",
            "Every positional embedding develops a sink",
            "NoPE 20.35, abs 32.73, learned 33.13, relative 35.53, ALiBi 20.78, RoPE 18.18",
            ("default", *POSITION_RUNS),
            j.present(POSITION_RUNS),
            paper_values=tuple(zip(POSITION_RUNS, POSITION_PAPER, strict=True)),
        ),
        Claim(
            "ffn",
            "architecture",
            "Every FFN type develops a sink",
            "ReLU 16.90, GeLU 14.76, Swish 17.89, ReGLU 13.88, GeGLU 17.86, SwiGLU 18.18",
            ("default", *MLP_RUNS),
            j.present(MLP_RUNS),
            paper_values=tuple(zip(MLP_RUNS, MLP_PAPER, strict=True)),
        ),
        Claim(
            "post-ln",
            "architecture",
            "Post-LN models develop a sink too",
            "Sink_1 13.54",
            ("default", "post_ln"),
            j.present(("post_ln",)),
            paper_values=(("post_ln", 13.54),),
        ),
        Claim(
            "heads",
            "architecture",
            "Every number of heads develops a sink",
            "H 1: 19.50, 2: 12.95, 4: 10.68, 8: 18.18, addition 21.76",
            ("default", *heads),
            j.present(heads),
            paper_values=(("heads_1", 19.50), ("heads_2", 12.95), ("heads_addition", 21.76)),
        ),
    ]


def _slot(cid: str, text: str, paper: str, run: str, value: float, leaves_first: bool = False) -> Claim:
    return Claim(
        cid,
        "architecture",
        text,
        paper,
        ("default", run),
        j.slot_takes(run, leaves_first),
        metric=slot_sink,
        paper_values=((run, value),),
    )


def _architecture_biases() -> list[Claim]:
    return [
        _slot(
            "k-bias",
            "A learnable key bias (even with zero value) takes the sink off x1",
            "K biases: Sink_1* 73.34, Sink_1 0.00",
            "kv_bias_k",
            73.34,
        ),
        _slot(
            "kv-bias",
            "Learnable key and value biases take the sink off x1",
            "KV biases: Sink_1* 72.76, Sink_1 0.04",
            "kv_bias_kv",
            72.76,
        ),
        _slot(
            "k-bias-shared",
            "A key bias shared by all heads still takes the sink off x1",
            "K shared: Sink_1* 68.31, Sink_1 0.23",
            "kv_bias_k_shared",
            68.31,
        ),
        _slot(
            "kv-bias-shared",
            "Head-shared KV biases take a sink on their slot (some stays on x1)",
            "KV shared: Sink_1* 56.61, Sink_1 12.44",
            "kv_bias_kv_shared",
            56.61,
            leaves_first=True,
        ),
        Claim(
            "k-bias-fixed-value",
            "architecture",
            "A large fixed value v* = 20 e1 on the key bias pushes the sink back onto x1",
            "v* 0: Sink_1 0.00; 20v': 25.88 (Table 5)",
            ("default", "kv_bias_k", "kv_bias_k_v20"),
            # A sink on x1 with v*, beyond the none of the plain key bias.
            j.all_of(j.present(("kv_bias_k_v20",)), j.stronger("kv_bias_k_v20", "kv_bias_k")),
            paper_values=(("kv_bias_k", 0.00), ("kv_bias_k_v20", 25.88)),
        ),
        _slot(
            "k-bias-few-dims",
            "A key bias with a single learnable dimension still takes a sink on its slot",
            "d_a 1: Sink_1* 32.18, Sink_1 4.74 (Table 13)",
            "kv_bias_k_da1",
            32.18,
            leaves_first=True,
        ),
        _slot(
            "sink-token",
            "A learnable sink token takes the sink off x1",
            "sink token: Sink_1* 74.12, Sink_1 0.00",
            "sink_token",
            74.12,
        ),
        Claim(
            "v-bias",
            "architecture",
            "A value bias alone does not remove the sink",
            "V biases: Sink_1 17.53",
            ("default", "kv_bias_v"),
            j.present(("kv_bias_v",)),
            paper_values=(("kv_bias_v", 17.53),),
        ),
    ]


def _kernel(
    cid: str,
    text: str,
    paper: str,
    runs: tuple[str, ...],
    values: tuple[float, ...],
    has_sink: bool,
    loss: str = "",
) -> Claim:
    judge = j.present(runs) if has_sink else j.absent(runs, loss=loss)
    return Claim(
        cid,
        "architecture",
        text,
        paper,
        ("default", *runs),
        judge,
        paper_values=tuple(zip(runs, values, strict=False)),
    )


def _architecture_kernels() -> list[Claim]:
    return [
        _kernel(
            "sigmoid-nonorm",
            "Sigmoid attention without normalisation has no sink at similar loss",
            "Sink_1* 0.44, loss 3.70 vs 3.73",
            ("sigmoid_nonorm",),
            (0.44,),
            False,
            "similar",
        ),
        _kernel(
            "sigmoid-robust",
            "Sigmoid attention without normalisation stays sink-free across learning rates and weight decay",
            "Sink_1* 0.18-0.81 (Table 14 right)",
            SIGMOID_ROBUSTNESS,
            (),
            False,
        ),
        _kernel(
            "sigmoid-norm",
            "Normalised sigmoid attention keeps the sink",
            "Sink_1 30.24",
            ("sigmoid_norm",),
            (30.24,),
            True,
        ),
        _kernel(
            "elu-nonorm",
            "elu+1 attention without normalisation has no sink",
            "Sink_1* 0.80, loss 3.69",
            ("elu_nonorm",),
            (0.80,),
            False,
        ),
        _kernel(
            "elu-kernel-norm",
            "Normalised elu-kernel (linear) attention has a sink",
            "Sink_1* 53.65, loss 4.19",
            ("linear_elu_norm",),
            (53.65,),
            True,
        ),
        _kernel(
            "linear-nonorm",
            "Identity-kernel attention without normalisation has no sink",
            "Sink_1* 0.00, loss 3.99",
            ("linear_identity_nonorm",),
            (0.00,),
            False,
        ),
        _kernel(
            "mlp-kernel",
            "MLP-kernel attention has no sink, normalised or not",
            "norm 0.19*, no norm 0.74*",
            ("linear_mlp_norm", "linear_mlp_nonorm"),
            (0.19, 0.74),
            False,
        ),
    ]


def _architecture_norms(control: str) -> list[Claim]:
    h1 = massive_activation_ratio
    return [
        Claim(
            "massive-activations",
            "architecture",
            "Models without a sink have no massive activation on the first token "
            "(nor has a sinkless softmax control)",
            "sigmoid / K-bias models: no massive activations (Figs. 7, 8)",
            ("default", "sigmoid_nonorm", "kv_bias_k", control),
            j.all_of(*(j.lower("default", run, h1) for run in ("sigmoid_nonorm", "kv_bias_k", control))),
            metric=h1,
        ),
        Claim(
            "sink-value-small",
            "architecture",
            "The sink token has a small value norm (below 1 and below a sinkless softmax control's)",
            "‖v₁‖ smaller than other tokens' (Sec. 3, Figs. 2, 11-14)",
            ("default", control),
            j.below_one("default", first_value_norm_ratio, control),
            metric=first_value_norm_ratio,
        ),
        Claim(
            "scale-1b",
            "scale-up",
            "Sigmoid without normalisation has no sink at 1B either",
            "1B: softmax 45.11 % / loss 3.07; sigmoid 2.46 %* / 3.10",
            ("default", "sigmoid_nonorm"),
            j.scale_only(("1b",), j.absent(("sigmoid_nonorm",), loss="similar")),
            paper_values=(("default", 45.11), ("sigmoid_nonorm", 2.46)),
        ),
    ]


def build_claims(
    windows: tuple[int, int] = (8, 32), default_wd: float = 0.5, control: str = "lr_x0.25"
) -> tuple[Claim, ...]:
    """Every claim the suites can judge; run names that depend on the scale (windows, weight decays, the
    sinkless control) are arguments."""
    return (
        *_optimization(control),
        *_data_random(),
        *_data_fixed(),
        *_loss(windows, default_wd),
        *_architecture_parts(),
        *_architecture_biases(),
        *_architecture_kernels(),
        *_architecture_norms(control),
    )


CLAIMS = build_claims()

# Claims of the paper that no suite judges, and why (the report lists them).
NOT_COVERED: tuple[tuple[str, str], ...] = (
    (
        "Sinks exist in open LMs of every size, also on random tokens (Table 1, Fig. 4 left)",
        "`reproduce --suite open-lms` measures them; it needs the models from the hub, not available offline",
    ),
    (
        "Repeated tokens remove the sink in RoPE models but not in GPT-2 (Table 1, Props. 1-4)",
        "open-lms suite (`repeat` input); needs hub models",
    ),
    (
        "Instruction tuning barely changes the sink (Table 1 right)",
        "needs base/chat model pairs from the hub",
    ),
    (
        "Sink strength and HellaSwag accuracy rise together within a family (Fig. 10)",
        "needs lm-evaluation-harness and hub models; not built",
    ),
    (
        "The sink follows cos(q_t, k_1), not the norm product (Fig. 2, Figs. 15-18)",
        "`sinklab measure` reports the angles; no claim reads them yet",
    ),
    (
        "In GPT2-XL the sink is tied to the learned p_1 (Table 7)",
        "needs GPT2-XL and a position-swap intervention; not built",
    ),
    (
        "The sink emerges between 1k and 2k steps at 60M (Fig. 4 middle)",
        "the report marks each scale's onset step; the number itself is scale-specific",
    ),
    (
        "Softmax with a smaller normaliser scale weakens the sink (Table 14 left)",
        "kernel `softmax_scaled` exists; no suite trains the alpha grid yet",
    ),
    (
        "p-normalised attention (Fig. 29)",
        "kernels `softmax_pnorm` / `sigmoid_pnorm` exist; figure-only claim",
    ),
    ("Post-LN massive activations sit before each LN (Fig. 7 left)", "not recorded by training evaluation"),
    ("Pile domains barely change the sink (Fig. 9)", "needs the Pile"),
    ("No SFT instability for sigmoid attention at 1B (App. E)", "needs SFT; not built"),
    (
        "Sinks are weaker in early blocks (the block / head pattern)",
        "Sink_1 per layer is recorded (`sink_percent_by_layer`); no claim reads it yet, and the tiny "
        "model has two blocks",
    ),
    (
        "Removing a learned sink token or K/V biases after training removes the sink on x1 at a large loss",
        "`sinklab ablate` can drop the slot; no suite runs that ablation on the bias / sink-token runs yet",
    ),
    (
        "With K or KV biases no massive activations; with a sink token or V biases they remain",
        "the ‖h₁‖ ratio is recorded per run; only the K-bias half is judged",
    ),
    ("‖k₁‖ is small (Sec. 3)", "key norms are measured by `sinklab measure`; no claim reads them yet"),
    (
        "Massive activations move to the prefix sink in a prefix LM",
        "prefix-lm is untested at BOS scales; the ratio per position is not recorded",
    ),
    (
        "The remaining rows of Tables 5 and 13 (other v* values, d_a 2-64)",
        "one row of each is judged (v* = 20 e1, d_a = 1); the others need runs no suite trains",
    ),
    (
        "Table 9's lr 8e-4 x 10k and 1e-4 x 80k steps; Fig. 4 right (a smaller lr delays the sink)",
        "one lr x steps pair is trained (lr_x0.5_steps_x2); per-run onsets are logged, no claim reads them",
    ),
    (
        "Table 2's γ 0.001, 0.01 and 2 (0.1 and 1 are trained)",
        "wd_0.1 and wd_1 are trained at tiny and listed as read by no claim; 0.001, 0.01 and 2 are not",
    ),
    ("Table 14 right's weight decay 1.0 for sigmoid attention", "not trained; 0 and the default are"),
    ("Jamba (a hybrid open model, Table 1)", "open-lms suite; needs the model from the hub"),
)


def claims_for(suites: list[str], windows: tuple[int, int] = (8, 32), default_wd: float = 0.5) -> list[Claim]:
    return [c for c in build_claims(windows, default_wd) if c.suite in suites]


def runs_without_default_sink(claims: Iterable[Claim]) -> set[str]:
    """Runs (seeds aside) that some claim can judge even when the default has no sink; every other run is
    uninformative then (its claims are all "not at this scale" or "untested")."""
    return {"default"} | {r for c in claims if not c.needs_default_sink for r in c.runs}


def runs_only_natural_claims_read(claims: Iterable[Claim]) -> set[str]:
    """Runs (seeds aside) that no claim reads except claims about a natural first token."""
    natural = {r for c in claims if c.natural_first_token for r in c.runs}
    return natural - {r for c in claims if not c.natural_first_token for r in c.runs}
