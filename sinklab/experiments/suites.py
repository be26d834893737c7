"""The paper's experiments as preset sweeps: one function per suite, each returning the runs it needs.

A run is a model/train preset plus `--set` overrides; runs with the same name are shared between suites
(every suite compares against the same `default` run), so `reproduce --suite all` trains each once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sinklab.registry import Registry


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
        preset="demo",
        # 6000 steps (the demo's own length): the default's sink onset is 2500-3500 steps here, so a run
        # without a sink counts as evidence (1.5 x the onset) only with this budget.
        base=("train.steps=6000", "train.threads=1", "train.progress=false"),
        lr=3e-3,
        batch_size=8,
        windows=(8, 32),
        note="tiny CPU scale: the demo recipe (2 x 128, BOS at position 0), 6000 steps",
        seeds=3,
        # `sinklab demo` (this recipe, two runs side by side, one thread each, a busy 2-core CPU): 6000
        # steps in about 11 minutes, 2026-12-04
        seconds_per_step=0.11,
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


def with_seeds(specs: list[RunSpec], seeds: int) -> list[RunSpec]:
    """Each run trained with seeds 0..seeds-1; seed 0 keeps the run's name, seed k is NAME-seed{k}."""
    from sinklab.experiments.claims import seed_run_name

    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    return [
        spec
        if k == 0
        else RunSpec(
            seed_run_name(spec.name, k), (*spec.overrides, f"train.seed={k}"), f"{spec.description}, seed {k}"
        )
        for spec in specs
        for k in range(seeds)
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
        ("lr_x2", (f"train.lr={scale.lr * 2:g}",), "learning rate x2"),
        ("lr_x0.25", (f"train.lr={scale.lr / 4:g}",), "learning rate x1/4"),
        ("batch_x0.5", (f"train.batch_size={scale.batch_size // 2}",), "batch size x1/2"),
        ("batch_x2", (f"train.batch_size={scale.batch_size * 2}",), "batch size x2"),
        (
            "lr_x0.5_steps_x2",
            (f"train.lr={scale.lr / 2:g}", f"train.steps={scale_config(scale).train.steps * 2}"),
            "learning rate x1/2 for twice the steps (lr x steps fixed, Table 9)",
        ),
    )


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
    from sinklab.experiments.claims import wd_run, window_run

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
    return _specs(
        *[
            (f"pos_{p}", (f"model.position={p}",), f"{p} positions")
            for p in ("nope", "sinusoidal", "learned", "relative", "alibi")
        ],
        *[(f"mlp_{m}", (f"model.mlp={m}",), f"{m} FFN") for m in ("relu", "gelu", "silu", "reglu", "geglu")],
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
            (f"sigmoid_nonorm_{tag}", (*sigmoid, setting), f"sigmoid attention without normalisation, {tag}")
            for tag, setting in (
                ("lr_x2", f"train.lr={scale.lr * 2:g}"),
                ("lr_x0.25", f"train.lr={scale.lr / 4:g}"),
                ("wd_0", "train.weight_decay=0"),
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
        *(f"pos_{p}" for p in ("nope", "sinusoidal", "learned", "relative", "alibi")),
    )
    from sinklab.experiments.claims import window_run

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
    return [*training_suites(), "open-lms", "all"]


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
