"""The paper's experiments as preset sweeps: one function per suite, each returning the runs it needs.

A run is a model/train preset plus `--set` overrides; runs with the same name are shared between suites
(every suite compares against the same `default` run), so `reproduce --suite all` trains each once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sinklab.registry import Registry

# ------------------------------------------------------------------------------------------ run names
# The names of runs and seeds, defined here with the runs themselves; the claims read them from here.

SEED_SUFFIX = re.compile(r"^(?P<name>.+)-seed(?P<seed>\d+)$")


def run_name_and_seed(directory_name: str) -> tuple[str, int]:
    """`default` -> (default, 0); `default-seed2` -> (default, 2): seed 0 keeps the plain name."""
    match = SEED_SUFFIX.match(directory_name)
    return (match["name"], int(match["seed"])) if match else (directory_name, 0)


def seed_run_name(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}-seed{seed}"


def wd_run(gamma: float, default_wd: float) -> str:
    """The run that trains weight decay `gamma`: the default itself where gamma is the scale's default."""
    return "default" if math.isclose(gamma, default_wd) else f"wd_{gamma:g}"


def window_run(window: int) -> str:
    return f"window_{window}"


POSITIONS = ("nope", "sinusoidal", "learned", "relative", "alibi")
POSITION_RUNS = tuple(f"pos_{p}" for p in POSITIONS)
MLPS = ("relu", "gelu", "silu", "reglu", "geglu")
MLP_RUNS = tuple(f"mlp_{m}" for m in MLPS)
SIGMOID_ROBUSTNESS = ("sigmoid_nonorm_lr_x2", "sigmoid_nonorm_lr_x0.25", "sigmoid_nonorm_wd_0")


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep."""

    name: str  # also the run directory under OUT/runs/
    overrides: tuple[str, ...] = ()  # `--set key=value` on top of the scale's base
    description: str = ""


@dataclass(frozen=True)
class Scale:
    """How big the runs of a sweep are: a run preset plus overrides shared by every run."""

    name: str
    preset: str
    base: tuple[str, ...]
    lr: float  # the default run's learning rate; lr sweeps scale it
    batch_size: int
    windows: tuple[int, int]  # a small and a large attention window (both < the eval length to matter)
    note: str = ""
    eval_length: int = 64  # windowed runs are evaluated at this length, where both windows matter
    seeds: int = 1  # seeds per run unless `reproduce --seeds` says otherwise
    # A softmax run of the same scale that grows no sink: the control that the claims about what a sink
    # brings with it (massive activations, a small value, the fall with T) are judged against.
    control: str = "lr_x0.25"
    # Seeds for the default and every run a graded comparison reads (learning rates, batch sizes, weight
    # decays, the control): the differences claimed there are smaller than a sink's presence or absence.
    # None: `seeds`.
    compared_seeds: int | None = None
    # Batch-size runs keep the default's tokens (steps scaled by the inverse factor), so that the claim
    # reads the batch size, not the amount of text, at a scale where the sink's onset is a few M tokens.
    token_matched_batch: bool = False
    # measured seconds per training step of one run at this scale (None: not measured), for the dry run's
    # estimate before any run of a sweep has logged its own speed
    seconds_per_step: float | None = None


MICRO = (
    "data.max_documents=80",
    "data.vocab_size=300",
    "data.tokenizer_train_chars=300000",
    "data.context=16",
    "data.eval_samples=4",
    "data.eval_length=16",
    "data.val_sequences=2",
    "model.n_layer=1",
    "model.n_head=2",
    "model.d_model=32",
    "model.d_ff=64",
    "train.steps=4",
    "train.batch_size=4",
    "train.warmup=1",
    "train.eval_every=2",
    "train.checkpoint_every=2",
    "train.threads=1",
    "train.progress=false",
    "train.tensorboard=false",
)

SCALES: dict[str, Scale] = {
    # Seconds per run, for smoke tests of the sweep machinery; far too small for a sink to emerge.
    "micro": Scale(
        name="micro",
        preset="tiny",
        base=MICRO,
        lr=1e-3,
        batch_size=4,
        windows=(4, 8),
        note="micro smoke-test scale (seconds per run; no sink is expected)",
        eval_length=16,
    ),
    # CPU minutes per run: the demo recipe (BOS at position 0, which makes the sink appear within a few
    # million tokens at this size; the paper's packing needs far more tokens than a CPU run can see).
    "tiny": Scale(
        name="tiny",
        preset="tiny-2x4",
        # 6000 steps (the demo's own length): the default's seeds grow their sink by 3500-4500 steps here
        # (one of three seeds never did), so a run without a sink counts as evidence only with this budget.
        base=("train.steps=6000", "train.threads=1", "train.progress=false"),
        lr=3e-3,
        batch_size=8,
        windows=(8, 32),
        note="tiny CPU scale: 2 x 4 heads x 128, BOS at position 0, 6000 steps (the demo recipe until 0.2)",
        seeds=3,
        # `sinklab demo` (this recipe, two runs side by side, one thread each, a busy 2-core CPU): 6000
        # steps in about 11 minutes, 2026-12-04
        seconds_per_step=0.11,
    ),
    # The reference CPU scale (docs/reference-recipe.md): 32 heads, so one head is 3.1 points, and enough
    # seeds that a difference of a few points is decided by the interval of seed means.
    "ref": Scale(
        name="ref",
        preset="ref",
        base=("train.threads=1", "train.progress=false"),
        lr=3e-3,
        batch_size=8,
        windows=(8, 32),
        note="reference CPU scale: 4 layers x 8 heads x 128, BOS at position 0, cosine lr, 6000 steps",
        seeds=5,
        compared_seeds=10,
        token_matched_batch=True,
        # the sweep's own runs on the current code (two side by side, one thread each, a 2-core CPU with
        # little else running): fixed_pos2-seed2, 6000 steps in 456 s from start to metrics.json, evaluations
        # included, 2026-12-08 (the search's runs, on older code beside other work: 0.11)
        seconds_per_step=0.076,
    ),
    # The paper's packing on a CPU (no BOS): the scale for the claims about a natural first token.
    "nobos": Scale(
        name="nobos",
        preset="nobos",
        base=("train.threads=1", "train.progress=false"),
        lr=2e-3,
        batch_size=8,
        windows=(8, 32),
        note="no-BOS CPU scale: the paper's packing, 4 x 128, context 256 (docs/nobos-recipe.md)",
        seeds=2,
    ),
    "small": Scale(
        name="small",
        preset="small",
        base=("data.bos=sequence", "train.steps=6000", "train.eval_every=500"),
        lr=1e-3,
        batch_size=32,
        windows=(8, 32),
        note="small scale, BOS at position 0",
    ),
    "60m": Scale(
        name="60m",
        preset="60m",
        base=(),
        lr=4e-4,
        batch_size=512,
        windows=(32, 256),
        note="the paper's 60M setting (20k steps of 1M tokens; GPUs)",
        eval_length=512,
    ),
    "1b": Scale(
        name="1b",
        preset="1b",
        base=(),
        lr=4e-4,
        batch_size=512,
        windows=(32, 256),
        note="the paper's 1B setting (40k steps of 1M tokens; GPUs)",
        eval_length=512,
    ),
}


def scale_config(scale: Scale, overrides: tuple[str, ...] = ()) -> Any:
    """The RunConfig a run of this scale trains with (`overrides`: the run's own)."""
    from sinklab.config import apply_overrides
    from sinklab.train.presets import get_run_preset

    return apply_overrides(get_run_preset(scale.preset), [*scale.base, *overrides])


def compared_runs(scale: Scale) -> set[str]:
    """The runs that graded comparisons read: the default, the optimisation suite, the weight decays the
    claims compare (0, 5 and the default's) and the sinkless control (they get `scale.compared_seeds`)."""
    default_wd = scale_config(scale).train.weight_decay
    return (
        {s.name for s in optimization(scale)} | {wd_run(g, default_wd) for g in (0.0, 5.0)} | {scale.control}
    )


def seeds_per_run(scale: Scale, seeds: int | None = None) -> Callable[[str], int]:
    """How many seeds a run of this scale trains: `seeds` (reproduce --seeds) for every run if given, else
    the scale's `compared_seeds` for the runs graded comparisons read and its `seeds` for the rest."""
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}")
        return lambda name: seeds
    compared = compared_runs(scale) if scale.compared_seeds else set()
    return lambda name: scale.compared_seeds if name in compared else scale.seeds


def with_seeds(specs: list[RunSpec], seeds: int | Callable[[str], int]) -> list[RunSpec]:
    """Each run trained with seeds 0..n-1 (`seeds`: n, or n per run name); seed 0 keeps the run's name, seed
    k is NAME-seed{k}."""
    count = seeds if callable(seeds) else (lambda name: seeds)
    counts = {spec.name: count(spec.name) for spec in specs}
    if any(n < 1 for n in counts.values()):
        raise ValueError(f"--seeds must be >= 1, got {min(counts.values())}")
    return [
        spec
        if k == 0
        else RunSpec(
            seed_run_name(spec.name, k), (*spec.overrides, f"train.seed={k}"), f"{spec.description}, seed {k}"
        )
        for spec in specs
        for k in range(counts[spec.name])
    ]


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; accepted: {', '.join(SCALES)}")
    return SCALES[name]


SuiteFn = Callable[[Scale], list[RunSpec]]
SUITES: Registry[SuiteFn] = Registry("suite")
DEFAULT = RunSpec("default", (), "the default softmax model")


def _specs(*variants: tuple[str, tuple[str, ...], str]) -> list[RunSpec]:
    return [DEFAULT, *(RunSpec(n, o, d) for n, o, d in variants)]


@SUITES.register("optimization")
def optimization(scale: Scale) -> list[RunSpec]:
    """Learning rate and batch size (paper Sec. 4, Table 9, Table 10 left)."""
    return _specs(
        ("lr_x2", lr_overrides(scale, 2), "learning rate x2"),
        ("lr_x0.25", lr_overrides(scale, 0.25), "learning rate x1/4"),
        *(_batch_run(scale, factor) for factor in (0.5, 2)),
        (
            "lr_x0.5_steps_x2",
            (*lr_overrides(scale, 0.5), f"train.steps={scale_config(scale).train.steps * 2}"),
            "learning rate x1/2 for twice the steps (lr x steps fixed, Table 9)",
        ),
    )


def lr_overrides(scale: Scale, factor: float) -> tuple[str, ...]:
    """The learning rate times `factor` (under a cosine schedule its floor too: the same shape, scaled)."""
    overrides = (f"train.lr={scale.lr * factor:g}",)
    train = scale_config(scale).train
    if train.schedule == "cosine" and train.min_lr > 0:
        overrides = (*overrides, f"train.min_lr={train.min_lr * factor:g}")
    return overrides


def _batch_run(scale: Scale, factor: float) -> tuple[str, tuple[str, ...], str]:
    overrides = (f"train.batch_size={int(scale.batch_size * factor)}",)
    description = f"batch size x{factor:g}"
    if scale.token_matched_batch:
        train = scale_config(scale).train
        steps, every = int(train.steps / factor), max(1, int(train.eval_every / factor))
        overrides = (*overrides, f"train.steps={steps}", f"train.eval_every={every}")
        description += f" for x{1 / factor:g} the steps (the default's tokens)"
    return f"batch_x{factor:g}", overrides, description


def prepends_bos(scale: Scale) -> bool:
    """Whether the scale's runs start every sequence with the same BOS (the CPU scales do)."""
    return scale_config(scale).data.bos != "none"


@SUITES.register("data")
def data(scale: Scale) -> list[RunSpec]:
    """Amount of data, random tokens at positions, a fixed token at a position (paper Sec. 5, Table 10).

    At a scale whose sequences start with a BOS, a random x1 replaces that BOS, so the suite also trains the
    default without it: the baseline a random first token is judged against.
    """
    no_bos = [("no_bos", ("data.bos=none",), "the default without a BOS")] if prepends_bos(scale) else []
    return _specs(
        *no_bos,
        ("data_10pct", ("data.fraction=0.1",), "10% of the training data"),
        ("data_1pct", ("data.fraction=0.01",), "1% of the training data"),
        ("random_x1", ("data.random_start=0", "data.random_end=1"), "x1 random"),
        ("random_x1x2", ("data.random_start=0", "data.random_end=2"), "x1 and x2 random"),
        ("random_x2", ("data.random_start=1", "data.random_end=2"), "x2 random"),
        ("random_x1to4", ("data.random_start=0", "data.random_end=4"), "x1 to x4 random"),
        # The fixed token must be the only constant one, as in the paper: no BOS at position 1 beside it
        # (scales that prepend a BOS would otherwise test "BOS + a fixed token at p").
        ("fixed_pos1", ("data.bos=none", "data.fixed_position=0"), "a fixed token at position 1, no BOS"),
        ("fixed_pos2", ("data.bos=none", "data.fixed_position=1"), "a fixed token at position 2, no BOS"),
        ("fixed_pos3", ("data.bos=none", "data.fixed_position=2"), "a fixed token at position 3, no BOS"),
    )


@SUITES.register("loss")
def loss(scale: Scale) -> list[RunSpec]:
    """Weight decay, prefix LM, shifted-window attention (paper Sec. 6, Table 2, Figs. 5-6).

    Weight decay trains the paper's grid 0, 0.1, 0.5, 1, 5 (the grid value equal to the scale's own default
    is the default run). Windowed runs are evaluated at the scale's eval_length, where both windows matter.
    """
    default_wd = scale_config(scale).train.weight_decay
    decays = [
        (wd_run(g, default_wd), (f"train.weight_decay={g:g}",), f"weight decay {g:g}")
        for g in WEIGHT_DECAYS
        if wd_run(g, default_wd) != "default"
    ]
    windows = [
        (
            window_run(w),
            (
                "model.attention.mask=window",
                f"model.attention.window={w}",
                f"data.eval_length={scale.eval_length}",
            ),
            f"window of {w} keys, evaluated at T = {scale.eval_length}",
        )
        for w in scale.windows
    ]
    return _specs(
        *decays,
        ("prefix_5", ("model.attention.mask=prefix", "model.attention.prefix=5"), "prefix LM, p = 5"),
        *windows,
    )


WEIGHT_DECAYS = (0.0, 0.1, 0.5, 1.0, 5.0)  # the paper's Table 2 around its default 0.1


@SUITES.register("architecture")
def architecture(scale: Scale) -> list[RunSpec]:
    """Positions, FFN, LN position, heads, KV biases, attention kernels (paper Sec. 7, Tables 3-6, 11-15)."""
    sigmoid = ("model.attention.kernel=sigmoid", "model.attention.normalize=false")
    kernels = [
        (
            "sigmoid_nonorm",
            sigmoid,
            "sigmoid attention without normalisation",
        ),
        (
            "sigmoid_norm",
            ("model.attention.kernel=sigmoid", "model.attention.normalize=true"),
            "sigmoid attention, normalised",
        ),
        (
            "elu_nonorm",
            ("model.attention.kernel=elu", "model.attention.normalize=false"),
            "elu+1 attention without normalisation",
        ),
        (
            "linear_elu_norm",
            ("model.attention.kernel=linear_elu", "model.attention.normalize=true"),
            "elu+1 kernel (linear) attention, normalised",
        ),
        (
            "linear_identity_nonorm",
            ("model.attention.kernel=linear_identity", "model.attention.normalize=false"),
            "identity kernel (linear) attention without normalisation",
        ),
        (
            "linear_mlp_norm",
            ("model.attention.kernel=linear_mlp", "model.attention.normalize=true"),
            "MLP kernel attention, normalised",
        ),
        (
            "linear_mlp_nonorm",
            ("model.attention.kernel=linear_mlp", "model.attention.normalize=false"),
            "MLP kernel attention without normalisation",
        ),
    ]
    # The sinkless softmax control that the claims about what a sink brings with it are judged against.
    control = {s.name: s for s in (*optimization(scale), *loss(scale))}[scale.control]
    return _specs(
        (control.name, control.overrides, control.description),
        *[(f"pos_{p}", (f"model.position={p}",), f"{p} positions") for p in POSITIONS],
        *[(f"mlp_{m}", (f"model.mlp={m}",), f"{m} FFN") for m in MLPS],
        ("post_ln", ("model.norm_position=post",), "post-LN"),
        ("heads_1", ("model.n_head=1",), "one head"),
        ("heads_2", ("model.n_head=2",), "two heads"),
        ("heads_addition", ("model.attention.heads=addition",), "heads summed instead of concatenated"),
        ("kv_bias_k", ("model.kv_bias=k",), "learnable key bias, zero value (per head)"),
        ("kv_bias_kv", ("model.kv_bias=kv",), "learnable key and value biases (per head)"),
        ("kv_bias_v", ("model.kv_bias=v",), "learnable value bias only"),
        ("kv_bias_k_shared", ("model.kv_bias=k", "model.kv_bias_per_head=false"), "key bias shared by heads"),
        (
            "kv_bias_kv_shared",
            ("model.kv_bias=kv", "model.kv_bias_per_head=false"),
            "key and value biases shared by heads",
        ),
        ("kv_bias_k_v20", ("model.kv_bias=k", "model.kv_bias_value=20"), "key bias, fixed value v* = 20 e1"),
        ("kv_bias_k_da1", ("model.kv_bias=k", "model.kv_bias_key_dims=1"), "key bias, 1 learnable dim"),
        ("sink_token", ("model.kv_bias=sink_token",), "a learnable sink token prepended"),
        *kernels,
        *[
            (f"sigmoid_nonorm_{tag}", (*sigmoid, *setting), f"sigmoid attention without normalisation, {tag}")
            for tag, setting in (
                ("lr_x2", lr_overrides(scale, 2)),
                ("lr_x0.25", lr_overrides(scale, 0.25)),
                ("wd_0", ("train.weight_decay=0",)),
            )
        ],
    )


@SUITES.register("natural")
def natural(scale: Scale) -> list[RunSpec]:
    """The runs of the claims about a natural first token (for the no-BOS scale): random tokens, data
    amount, prefix LM, windows, sink token, K/V biases, sigmoid without normalisation, positions."""
    wanted = (
        "random_x1",
        "random_x2",
        "random_x1x2",
        "data_10pct",
        "data_1pct",
        "prefix_5",
        "sink_token",
        "kv_bias_k",
        "kv_bias_v",
        "sigmoid_nonorm",
        *POSITION_RUNS,
    )
    pool = {s.name: s for suite in (data, loss, architecture) for s in suite(scale)}
    return [DEFAULT, *(pool[n] for n in (*wanted, *(window_run(w) for w in scale.windows)))]


@SUITES.register("beyond")
def beyond(scale: Scale) -> list[RunSpec]:
    """Newer sink-free attention operations (not in the paper)."""
    return _specs(
        (
            "softmax_off_by_one",
            ("model.attention.kernel=softmax_off_by_one",),
            "softmax + 1 in the denominator",
        ),
        ("sink_logit", ("model.attention.kernel=sink_logit",), "a learnable sink logit per head (gpt-oss)"),
        ("gated", ("model.attention.gate=true",), "gated attention (Qiu et al. 2025)"),
        ("relu_attention", ("model.attention.kernel=relu",), "ReLU attention / query position"),
        ("softpick", ("model.attention.kernel=softpick",), "softpick (rectified softmax)"),
    )


@SUITES.register("scale-up")
def scale_up(scale: Scale) -> list[RunSpec]:
    """Softmax vs sigmoid without normalisation at the suite's scale (the paper's 1B check at --scale 1b)."""
    return _specs(
        (
            "sigmoid_nonorm",
            ("model.attention.kernel=sigmoid", "model.attention.normalize=false"),
            "sigmoid attention without normalisation",
        ),
    )


# `--suite all` trains the paper's suites in the paper's order (§4 optimisation, §5 data, §6 loss, §7
# architecture, then the natural-first-token and 1B checks) and the runs beyond the paper last, so that a
# sweep cut short has judged the paper's claims first.
SUITE_ORDER = ("optimization", "data", "loss", "architecture", "natural", "scale-up", "beyond")


def training_suites() -> list[str]:
    """The registered training suites, in the order `--suite all` trains them (unlisted ones at the end)."""
    names = SUITES.names()
    return sorted(names, key=lambda n: SUITE_ORDER.index(n) if n in SUITE_ORDER else len(SUITE_ORDER))


def suite_names() -> list[str]:
    return [*training_suites(), "open-lms", "pythia-trajectory", "all"]


def runs_for(suite: str, scale: Scale) -> list[RunSpec]:
    """The runs of one suite, or of every training suite for `all`, each name once."""
    names = training_suites() if suite == "all" else [suite]
    if suite != "all" and suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; accepted: {', '.join(suite_names())}")
    seen: dict[str, RunSpec] = {}
    for name in names:
        for spec in SUITES.get(name)(scale):
            if spec.name in seen and seen[spec.name] != spec:
                raise RuntimeError(f"run {spec.name!r} is defined differently by two suites")
            seen.setdefault(spec.name, spec)
    return list(seen.values())
