"""Verdict logic on hand-made results: every claim reaches reproduced and contradicted (where the claim can
be contradicted), the one rule decides both, and the "not yet emerged" rule works in both directions."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinklab.experiments.claims import (
    CLAIMS,
    CONTRADICTED,
    INCONCLUSIVE,
    MISSING,
    NOT_AT_SCALE,
    REPRODUCED,
    UNTESTED,
    RunResult,
    Stat,
    build_claims,
    group_results,
)
from sinklab.experiments.suites import (
    SCALES,
    run_name_and_seed,
    runs_for,
    scale_config,
    seed_run_name,
    with_seeds,
)

STEPS = 4000
EVALS = (0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000)


def seeds(
    name: str,
    sink1: float = 0.0,
    *,
    at: dict[int, float] | None = None,
    slot: float | None = None,
    loss: float = 3.0,
    onset: int = 1000,
    steps: int = STEPS,
    tokens_per_step: int = 512,
    n: int = 3,
    jitter: float = 0.3,
    hidden: float | None = None,
    value: float | None = None,
    window: float | None = None,
    layers: int = 2,
    heads: int = 4,
    by_length: dict[float, list[float]] | None = None,
) -> list[RunResult]:
    """`n` seeds of a run: Sink_k 0 before `onset`, then the final values (sink1 / `at`) +- jitter."""
    out = []
    for seed in range(n):
        d = jitter * (seed - (n - 1) / 2)
        final = [0.0] * 16
        final[0] = max(0.0, sink1 + d) if sink1 else 0.0
        for k, v in (at or {}).items():
            final[k - 1] = max(0.0, v + d) if v else 0.0
        history = []
        for step in (s for s in EVALS if s <= steps) if steps == STEPS else (*range(0, steps, 500), steps):
            line = {
                "step": step,
                "tokens": step * tokens_per_step,
                "val_loss": loss + d / 100,
                "sink_percent": final[:10] if step >= onset else [0.0] * 10,
            }
            if slot is not None:
                line["slot_sink_percent"] = max(0.0, slot + d) if step >= onset else 0.0
            if window is not None:
                line["sink_percent_window"] = [max(0.0, window + d) if window else 0.0]
            history.append(line)
        metrics = {"schema": 1, "sink_percent": final, "analyses": {}}
        if hidden is not None:
            metrics["analyses"]["hidden_norm"] = [[1.0] * 8, [hidden + d / 10, *[1.0] * 7], [1.0] * 8]
        if value is not None:
            metrics["analyses"]["value_norm"] = [[value + d / 100, *[1.0] * 7]] * 2
        if window is not None:
            metrics["sink_percent_window"] = history[-1]["sink_percent_window"]
        out.append(
            RunResult(
                name=name,
                sink_percent=final,
                val_loss=loss,
                slot_sink=slot,
                history=history,
                seed=seed,
                layers=layers,
                heads=heads,
                metrics=metrics,
                by_length=None
                if by_length is None
                else {
                    "lengths": [16, 32, 64],
                    "eps": list(by_length),
                    "sink_1": {f"{e:g}": [max(0.0, v + d) for v in vs] for e, vs in by_length.items()},
                },
            )
        )
    return out


def results(*runs: list[RunResult]):
    return group_results(r for run in runs for r in run)


def claim(claim_id: str):
    return next(c for c in CLAIMS if c.id == claim_id)


def verdict(claim_id: str, *runs: list[RunResult], scale: str = "nobos", bos: bool = False) -> str:
    return claim(claim_id).evaluate(results(*runs), scale, bos=bos).verdict


DEFAULT = seeds("default", 30.0)
# Every seed's sink appears at step 4500 of 5000: a variant without a sink after 4000 steps is too short.
LATE_DEFAULT = seeds("default", 30.0, onset=4500, steps=5000)


# --------------------------------------------------------------------------------------------- the rule


def test_stat_mean_and_spread():
    s = Stat([10.0, 12.0, 14.0])
    assert s.mean == 12.0 and s.sd == pytest.approx(2.0) and s.text() == "12.00 [10.00–14.00] (n=3)"


def test_seed_names_round_trip():
    assert run_name_and_seed("default") == ("default", 0)
    assert run_name_and_seed("lr_x0.25-seed2") == ("lr_x0.25", 2)
    assert seed_run_name("default", 0) == "default" and seed_run_name("default", 1) == "default-seed1"


def test_with_seeds_expands_every_run_with_its_seed():
    specs = with_seeds(runs_for("optimization", SCALES["tiny"]), 3)
    names = [s.name for s in specs]
    assert "default" in names and "default-seed1" in names and "lr_x2-seed2" in names
    assert len(specs) == 3 * len(runs_for("optimization", SCALES["tiny"]))
    assert "train.seed=2" in next(s for s in specs if s.name == "lr_x2-seed2").overrides
    with pytest.raises(ValueError, match="seeds"):
        with_seeds(specs, 0)


def test_every_claim_names_runs_that_a_suite_trains_at_every_scale():
    for name, scale in SCALES.items():
        trained = {r.name for r in runs_for("all", scale)}
        for c in build_claims(scale.windows, scale_config(scale).train.weight_decay):
            assert set(c.runs) <= trained | {"default"}, (name, c.id, set(c.runs) - trained)


def test_missing_run_is_reported_as_missing():
    assert verdict("lr-smaller-weaker", DEFAULT) == MISSING


def test_tiny_scale_trains_at_least_three_seeds():
    assert SCALES["tiny"].seeds >= 3


# ---------------------------------------------------------------------- "not yet emerged", both ways


def test_no_sink_counts_as_evidence_only_after_the_onset_rule_for_weaker_claims():
    low = seeds("lr_x0.25", 0.0)
    assert verdict("lr-smaller-weaker", DEFAULT, low) == REPRODUCED
    assert verdict("lr-smaller-weaker", LATE_DEFAULT, low) == NOT_AT_SCALE


def test_no_sink_counts_as_evidence_only_after_the_onset_rule_for_stronger_claims():
    no_sink = seeds("lr_x2", 0.0)
    assert verdict("lr-larger-stronger", DEFAULT, no_sink) == CONTRADICTED
    assert verdict("lr-larger-stronger", LATE_DEFAULT, no_sink) == NOT_AT_SCALE


def test_the_same_rule_excuses_every_variant_claim():
    for late in (False, True):
        base = LATE_DEFAULT if late else DEFAULT
        expected = NOT_AT_SCALE if late else CONTRADICTED
        assert verdict("post-ln", base, seeds("post_ln", 0.0)) == expected
        assert verdict("random-x2", base, seeds("random_x2", 0.0)) == expected
        assert verdict("batch-no-effect", base, seeds("batch_x0.5", 0.0), seeds("batch_x2", 30.0)) == expected


def test_fewer_tokens_are_judged_by_tokens_too():
    # Half the batch for the same steps: past the onset in steps (3000), not in tokens (1.5M).
    half = seeds("batch_x0.5", 0.0, tokens_per_step=256, steps=STEPS)
    assert verdict("batch-no-effect", seeds("default", 30.0, onset=3000), half, seeds("batch_x2", 30.0)) == (
        NOT_AT_SCALE
    )


def test_a_no_difference_claim_needs_a_test_that_could_have_seen_the_sink_vanish():
    """The tiny sweep's case: the default's seeds spread widely (0, 15, 30; one grew no sink); a batch size
    whose runs have no sink at all is not shown to be the same (TOST: the 90 % interval of the difference is
    not within one head), nor different. Inconclusive, never reproduced."""
    noisy = seeds("default", 15.0, jitter=15.0)
    gone = seeds("batch_x0.5", 0.0)  # no sink, trained as many tokens as the default
    assert verdict("batch-no-effect", noisy, gone, seeds("batch_x2", 15.0)) == INCONCLUSIVE
    finding = claim("batch-no-effect").evaluate(results(noisy, gone, seeds("batch_x2", 15.0)), "nobos")
    assert "90 %" in finding.rule and "within ±12.5: does not hold" in finding.rule
    assert "1 of 3 default seeds grew no sink" in finding.rule
    # A precise default: the same no-sink run is a difference beyond noise, so the claim is contradicted.
    assert verdict("batch-no-effect", DEFAULT, gone, seeds("batch_x2", 30.0)) == CONTRADICTED
    close = (seeds("batch_x0.5", 28.0), seeds("batch_x2", 33.0))
    assert verdict("batch-no-effect", DEFAULT, *close) == REPRODUCED


def test_a_run_with_no_sink_yet_is_no_evidence_for_a_no_difference_claim_either():
    """Within noise or not, a run without a sink that trained fewer tokens than the latest default seed's
    onset decides nothing: not at this scale (the onset rule, both ways)."""
    noisy = seeds("default", 15.0, jitter=15.0, onset=3000)
    half = seeds("batch_x0.5", 0.0, tokens_per_step=256)
    assert verdict("batch-no-effect", noisy, half, seeds("batch_x2", 15.0)) == NOT_AT_SCALE


def test_comparisons_need_a_sink_in_the_default_run():
    assert verdict("lr-smaller-weaker", seeds("default", 0.5), seeds("lr_x0.25", 0.0)) == NOT_AT_SCALE


# ------------------------------------------------------------------------------- claim by claim
# (claim, runs for reproduced, runs for contradicted); every run not named is left out.

FALLING = {0.2: [95.0, 40.0, 30.0], 0.3: [45.0, 30.0, 20.0], 0.4: [30.0, 15.0, 8.0], 0.5: [15.0, 5.0, 2.0]}
RISING = {**FALLING, 0.5: [2.0, 5.0, 30.0]}
FLAT = {e: [1.0, 1.0, 1.0] for e in FALLING}  # a sinkless control: nothing to fall from
CONTROL = seeds("lr_x0.25", 0.0, by_length=FLAT, hidden=2.0, value=1.0)
CASES = {
    "sink-emerges": ([DEFAULT], None),
    "eps-length": (
        [seeds("default", 30.0, by_length=FALLING), CONTROL],
        [seeds("default", 30.0, by_length=RISING), CONTROL],
    ),
    "lr-smaller-weaker": ([DEFAULT, seeds("lr_x0.25", 2.0)], [DEFAULT, seeds("lr_x0.25", 60.0)]),
    "lr-larger-stronger": ([DEFAULT, seeds("lr_x2", 60.0)], [DEFAULT, seeds("lr_x2", 0.0)]),
    "lr-steps-matched": (
        [DEFAULT, seeds("lr_x0.5_steps_x2", 5.0)],
        [DEFAULT, seeds("lr_x0.5_steps_x2", 60.0)],
    ),
    "batch-no-effect": (
        [DEFAULT, seeds("batch_x0.5", 28.0), seeds("batch_x2", 33.0)],
        [DEFAULT, seeds("batch_x0.5", 0.0), seeds("batch_x2", 33.0)],
    ),
    "data-amount": ([DEFAULT, seeds("data_1pct", 0.0)], None),
    "data-less-weaker": ([DEFAULT, seeds("data_10pct", 5.0)], [DEFAULT, seeds("data_10pct", 60.0)]),
    "random-x1": ([DEFAULT, seeds("random_x1", 30.0)], [DEFAULT, seeds("random_x1", 0.0)]),
    "random-x2": ([DEFAULT, seeds("random_x2", 25.0)], [DEFAULT, seeds("random_x2", 0.0)]),
    "random-x1x2": (
        [DEFAULT, seeds("random_x1x2", 0.0, at={2: 40.0})],
        [DEFAULT, seeds("random_x1x2", 40.0, at={2: 0.0})],
    ),
    "random-more": (
        [DEFAULT, seeds("random_x1to4", 0.0)],
        [DEFAULT, seeds("random_x1to4", 0.0, at={5: 60.0})],
    ),
    **{
        f"fixed-pos{p}": (
            [DEFAULT, seeds(f"fixed_pos{p}", 0.0, at={p: 60.0})],
            [DEFAULT, seeds(f"fixed_pos{p}", 0.0, at={(p % 3) + 1: 60.0})],
        )
        for p in (1, 2, 3)
    },
    "wd-zero-sink": ([DEFAULT, seeds("wd_0", 20.0)], [DEFAULT, seeds("wd_0", 0.0)]),
    "wd-moderate": ([DEFAULT, seeds("wd_0", 10.0)], [DEFAULT, seeds("wd_0", 60.0)]),
    "wd-extreme": (
        [DEFAULT, seeds("wd_5", 0.0, loss=5.0)],
        [DEFAULT, seeds("wd_5", 0.0, loss=3.0)],  # the same loss (TOST): contradicted
    ),
    "prefix-lm": (
        [DEFAULT, seeds("prefix_5", 0.0, at={3: 40.0})],
        [DEFAULT, seeds("prefix_5", 0.0, at={7: 40.0})],
    ),
    "window-small": (
        [DEFAULT, seeds("window_8", 0.0, window=0.0)],
        [DEFAULT, seeds("window_8", 0.0, window=40.0)],
    ),
    "window-large": (
        [DEFAULT, seeds("window_32", 0.0, window=30.0)],
        [DEFAULT, seeds("window_32", 0.0, window=0.0)],
    ),
    "positions": (
        [DEFAULT, *[seeds(f"pos_{p}", 25.0) for p in ("nope", "sinusoidal", "learned", "relative", "alibi")]],
        [
            DEFAULT,
            seeds("pos_nope", 0.0),
            *[seeds(f"pos_{p}", 25.0) for p in ("sinusoidal", "learned", "relative", "alibi")],
        ],
    ),
    "ffn": (
        [DEFAULT, *[seeds(f"mlp_{m}", 25.0) for m in ("relu", "gelu", "silu", "reglu", "geglu")]],
        [
            DEFAULT,
            seeds("mlp_gelu", 0.0),
            *[seeds(f"mlp_{m}", 25.0) for m in ("relu", "silu", "reglu", "geglu")],
        ],
    ),
    "post-ln": ([DEFAULT, seeds("post_ln", 20.0)], [DEFAULT, seeds("post_ln", 0.0)]),
    "heads": (
        [DEFAULT, seeds("heads_1", 50.0), seeds("heads_2", 25.0), seeds("heads_addition", 20.0)],
        [DEFAULT, seeds("heads_1", 0.0), seeds("heads_2", 25.0), seeds("heads_addition", 20.0)],
    ),
    "k-bias": ([DEFAULT, seeds("kv_bias_k", 0.0, slot=60.0)], [DEFAULT, seeds("kv_bias_k", 30.0, slot=2.0)]),
    "kv-bias": (
        [DEFAULT, seeds("kv_bias_kv", 0.0, slot=60.0)],
        [DEFAULT, seeds("kv_bias_kv", 30.0, slot=0.0)],
    ),
    "k-bias-shared": (
        [DEFAULT, seeds("kv_bias_k_shared", 0.0, slot=60.0)],
        [DEFAULT, seeds("kv_bias_k_shared", 30.0, slot=0.0)],
    ),
    "kv-bias-shared": (
        [DEFAULT, seeds("kv_bias_kv_shared", 12.0, slot=50.0)],
        [DEFAULT, seeds("kv_bias_kv_shared", 0.0, slot=0.0)],
    ),
    "k-bias-fixed-value": (
        [DEFAULT, seeds("kv_bias_k", 0.0, slot=60.0), seeds("kv_bias_k_v20", 25.0, slot=2.0)],
        [DEFAULT, seeds("kv_bias_k", 0.0, slot=60.0), seeds("kv_bias_k_v20", 0.0, slot=60.0)],
    ),
    "k-bias-few-dims": (
        [DEFAULT, seeds("kv_bias_k_da1", 4.0, slot=30.0)],
        [DEFAULT, seeds("kv_bias_k_da1", 0.0, slot=0.0)],
    ),
    "sink-token": (
        [DEFAULT, seeds("sink_token", 0.0, slot=60.0)],
        [DEFAULT, seeds("sink_token", 30.0, slot=0.0)],
    ),
    "v-bias": ([DEFAULT, seeds("kv_bias_v", 20.0)], [DEFAULT, seeds("kv_bias_v", 0.0)]),
    "sigmoid-nonorm": (
        [DEFAULT, seeds("sigmoid_nonorm", 0.2, loss=3.02)],
        [DEFAULT, seeds("sigmoid_nonorm", 20.0)],
    ),
    "sigmoid-robust": (
        [
            DEFAULT,
            *[
                seeds(n, 0.0)
                for n in ("sigmoid_nonorm_lr_x2", "sigmoid_nonorm_lr_x0.25", "sigmoid_nonorm_wd_0")
            ],
        ],
        [
            DEFAULT,
            seeds("sigmoid_nonorm_lr_x2", 20.0),
            *[seeds(n, 0.0) for n in ("sigmoid_nonorm_lr_x0.25", "sigmoid_nonorm_wd_0")],
        ],
    ),
    "sigmoid-norm": ([DEFAULT, seeds("sigmoid_norm", 25.0)], [DEFAULT, seeds("sigmoid_norm", 0.0)]),
    "elu-nonorm": ([DEFAULT, seeds("elu_nonorm", 0.0)], [DEFAULT, seeds("elu_nonorm", 20.0)]),
    "elu-kernel-norm": ([DEFAULT, seeds("linear_elu_norm", 40.0)], [DEFAULT, seeds("linear_elu_norm", 0.0)]),
    "linear-nonorm": (
        [DEFAULT, seeds("linear_identity_nonorm", 0.0)],
        [DEFAULT, seeds("linear_identity_nonorm", 20.0)],
    ),
    "mlp-kernel": (
        [DEFAULT, seeds("linear_mlp_norm", 0.0), seeds("linear_mlp_nonorm", 0.0)],
        [DEFAULT, seeds("linear_mlp_norm", 20.0), seeds("linear_mlp_nonorm", 0.0)],
    ),
    "massive-activations": (
        [
            seeds("default", 30.0, hidden=20.0),
            seeds("sigmoid_nonorm", 0.0, hidden=2.0),
            seeds("kv_bias_k", 0.0, slot=50.0, hidden=2.0),
            CONTROL,
        ],
        [
            seeds("default", 30.0, hidden=2.0),
            seeds("sigmoid_nonorm", 0.0, hidden=20.0),
            seeds("kv_bias_k", 0.0, slot=50.0, hidden=2.0),
            CONTROL,
        ],
    ),
    "sink-value-small": (
        [seeds("default", 30.0, value=0.3), CONTROL],
        [seeds("default", 30.0, value=1.8), CONTROL],
    ),
    "scale-1b": None,  # judged only at 1b; see below
}


def test_every_claim_has_cases():
    assert set(CASES) == {c.id for c in CLAIMS}


@pytest.mark.parametrize("claim_id", sorted(k for k, v in CASES.items() if v is not None))
def test_claim_reproduced_and_contradicted(claim_id):
    good, bad = CASES[claim_id]
    assert verdict(claim_id, *good) == REPRODUCED
    if bad is not None:
        assert verdict(claim_id, *bad) == CONTRADICTED


def test_claims_without_a_contradicted_branch_at_cpu_scales_have_one_at_the_paper_scales():
    assert verdict("sink-emerges", seeds("default", 0.0)) == NOT_AT_SCALE
    assert verdict("sink-emerges", seeds("default", 0.0), scale="60m") == CONTRADICTED
    assert verdict("data-amount", DEFAULT, seeds("data_1pct", 20.0)) == NOT_AT_SCALE
    assert verdict("data-amount", DEFAULT, seeds("data_1pct", 20.0), scale="60m") == CONTRADICTED


def test_scale_1b_only_at_1b():
    runs = [DEFAULT, seeds("sigmoid_nonorm", 0.0, loss=3.05)]
    assert verdict("scale-1b", *runs) == NOT_AT_SCALE
    assert verdict("scale-1b", *runs, scale="1b") == REPRODUCED
    assert verdict("scale-1b", DEFAULT, seeds("sigmoid_nonorm", 20.0), scale="1b") == CONTRADICTED


def test_a_difference_within_noise_is_inconclusive():
    assert verdict("lr-smaller-weaker", DEFAULT, seeds("lr_x0.25", 25.0)) == INCONCLUSIVE
    finding = claim("lr-smaller-weaker").evaluate(results(DEFAULT, seeds("lr_x0.25", 25.0)), "tiny")
    # 5 points apart, the interval excludes 0, but one head (12.5 points) is the smallest effect worth calling
    assert "difference +5.00 [+4.32, +5.68] (95 %, Welch t)" in finding.rule
    assert ">= 12.5 (smallest effect worth calling): does not hold" in finding.rule


def test_a_single_seed_says_its_spread_is_unknown():
    finding = claim("lr-smaller-weaker").evaluate(
        results(seeds("default", 30.0, n=1), seeds("lr_x0.25", 0.0, n=1)), "tiny"
    )
    assert finding.verdict == INCONCLUSIVE and "needs >= 2 seeds" in finding.rule


def test_similar_loss_is_checked():
    far = [DEFAULT, seeds("sigmoid_nonorm", 0.0, loss=3.8)]
    assert verdict("sigmoid-nonorm", *far) == CONTRADICTED


def test_a_window_bound_cannot_pass_the_window_claim():
    # With w = 8 at T = 64, plain α_1 <= 8/64 < 0.3: Sink_1 is 0 by construction. The claim reads the
    # window-normalised Sink_1 and is missing without it, contradicted when that shows a sink.
    bounded = seeds("window_8", 0.0)
    assert verdict("window-small", DEFAULT, bounded) == MISSING
    assert verdict("window-small", DEFAULT, seeds("window_8", 0.0, window=45.0)) == CONTRADICTED


def test_ratio_claims_need_two_seeds():
    one = [seeds("default", 30.0, value=0.3, n=1), seeds("lr_x0.25", 0.0, value=1.0, n=1)]
    assert verdict("sink-value-small", *one) == INCONCLUSIVE


def test_natural_first_token_claims_are_untested_where_a_bos_starts_every_sequence():
    runs = [DEFAULT, seeds("random_x2", 25.0)]
    assert verdict("random-x2", *runs) == REPRODUCED
    assert verdict("random-x2", *runs, scale="tiny", bos=True) == UNTESTED
    # a no-BOS CPU scale whose default grew no sink cannot test them either
    assert verdict("random-x2", seeds("default", 0.0), seeds("random_x2", 0.0)) == UNTESTED
    # claims that do not need a natural first token are judged at a BOS scale as usual
    assert (
        verdict("sigmoid-nonorm", DEFAULT, seeds("sigmoid_nonorm", 0.0), scale="tiny", bos=True) == REPRODUCED
    )
    # One criterion: the variant changes what the first positions hold or what a query sees of them.
    assert {c.id for c in CLAIMS if c.natural_first_token} == {
        "data-amount",
        "data-less-weaker",
        "random-x1",
        "random-x2",
        "random-x1x2",
        "random-more",
        "prefix-lm",
        "window-small",
        "window-large",
    }
    # Architecture claims are judged at a BOS scale like heads, biases and kernels.
    for claim_id, runs in (("post-ln", ["post_ln"]), ("sink-token", ["sink_token"])):
        good, _ = CASES[claim_id]
        assert verdict(claim_id, *good, scale="tiny", bos=True) == REPRODUCED, (claim_id, runs)


@pytest.mark.parametrize("claim_id", sorted(k for k, v in CASES.items() if v is not None))
def test_every_claim_is_missing_without_its_runs_and_needs_a_default_sink(claim_id):
    good, _ = CASES[claim_id]
    assert verdict(claim_id) == MISSING  # no run at all
    if len(good) > 1:
        assert verdict(claim_id, *good[:-1]) == MISSING  # one run short
    if not claim(claim_id).needs_default_sink:
        assert claim_id == "sink-emerges"
        return
    # The same runs with a default that never grew a sink: the claim cannot be judged here ...
    no_default = [r for r in good if r[0].name != "default"]
    flat = seeds("default", 0.0, hidden=1.0, value=1.0)
    expected = UNTESTED if claim(claim_id).natural_first_token else NOT_AT_SCALE
    assert verdict(claim_id, flat, *no_default) == expected
    # ... nor with its other runs never trained (the sweep skips them then), at a CPU scale; at the paper's
    # scales a missing run stays missing.
    assert verdict(claim_id, flat) == expected
    if no_default:
        assert verdict(claim_id, flat, scale="60m") == MISSING


@pytest.mark.parametrize("claim_id", sorted(c.id for c in CLAIMS if c.natural_first_token))
def test_a_sinkless_no_bos_default_decides_untested_before_the_other_runs_exist(claim_id):
    # The sweep skips these runs when the default grew no sink; the report must not call them missing.
    assert verdict(claim_id, seeds("default", 0.0, hidden=1.0, value=1.0)) == UNTESTED
    assert verdict(claim_id, seeds("default", 0.0), scale="tiny", bos=True) == UNTESTED
    if claim(claim_id).runs != ("default",):
        assert verdict(claim_id, DEFAULT) == MISSING  # a default with a sink: the claim needs its runs


@pytest.mark.parametrize("claim_id", sorted(c.id for c in CLAIMS if c.natural_first_token))
def test_natural_first_token_claims_are_untested_at_a_bos_scale(claim_id):
    good, _ = CASES[claim_id]
    assert verdict(claim_id, *good, scale="tiny", bos=True) == UNTESTED


def test_eps_length_is_inconclusive_within_noise_and_missing_unmeasured():
    flat = {e: [20.0, 19.0, 18.0] for e in (0.2, 0.3, 0.4, 0.5)}  # 2 points: less than one head (12.5)
    assert verdict("eps-length", seeds("default", 30.0, by_length=flat), CONTROL) == INCONCLUSIVE
    assert verdict("eps-length", DEFAULT, CONTROL) == MISSING  # the default's final model was never measured


def test_a_claim_of_several_parts_names_each_value_once():
    runs = results(DEFAULT, seeds("kv_bias_k", 0.0, slot=60.0), seeds("kv_bias_k_v20", 25.0, slot=2.0))
    ours = claim("k-bias-fixed-value").evaluate(runs, "nobos").ours
    assert ours.count("kv_bias_k_v20") == 1 and "kv_bias_k " in ours


# ----------------------------------------------------------------------------------- controls, figures


def test_claims_about_what_a_sink_brings_are_judged_against_a_sinkless_control():
    control = SCALES["tiny"].control
    for claim_id in ("eps-length", "massive-activations", "sink-value-small"):
        assert control in claim(claim_id).runs, claim_id
    assert control in {s.name for s in runs_for("architecture", SCALES["tiny"])}
    # a control whose first value is as small as the sink model's: not reproduced
    as_small = seeds("lr_x0.25", 0.0, value=0.3)
    assert verdict("sink-value-small", seeds("default", 30.0, value=0.3), as_small) == INCONCLUSIVE
    # a control with the same massive activation as the default: not reproduced
    massive = [seeds("default", 30.0, hidden=20.0), seeds("sigmoid_nonorm", 0.0, hidden=2.0)]
    massive.append(seeds("kv_bias_k", 0.0, slot=50.0, hidden=2.0))
    assert verdict("massive-activations", *massive, seeds("lr_x0.25", 0.0, hidden=20.0)) != REPRODUCED


@pytest.mark.parametrize("claim_id", sorted(c.id for c in CLAIMS if c.figure == "bars" and CASES.get(c.id)))
def test_each_claim_figure_plots_the_claims_metric(claim_id, monkeypatch, tmp_path):
    from sinklab import plots
    from sinklab.experiments import report

    drawn = {}

    def capture(values, curves, ylabel, title, paper=None, **_):
        drawn.update(values=values, curves=curves, ylabel=ylabel, title=title, paper=paper)
        return plots.figure((2, 2))

    monkeypatch.setattr(plots, "claim_figure", capture)
    c = claim(claim_id)
    good, _ = CASES[claim_id]
    runs = results(*good)
    finding = c.evaluate(runs, "nobos")
    report._claim_figure(c, finding, runs, tmp_path)
    metric = c.metric
    assert drawn["ylabel"] == metric.axis() and drawn["title"].startswith(finding.verdict)
    for name, values in drawn["values"].items():
        assert values == [v for r in runs[name].seeds if (v := metric(r)) is not None]
    for name, curves in drawn["curves"].items():
        assert curves == [s for r in runs[name].seeds if len(s := metric.during_training(r)) > 1]
    assert set(drawn["paper"]) == {n for n, _ in c.paper_values}


def test_the_report_has_no_claim_specific_code():
    import inspect

    from sinklab.experiments import report

    source = inspect.getsource(report)
    assert ".id ==" not in source and "c.id in" not in source
    assert not any(f'"{c.id}"' in source for c in CLAIMS)


def test_the_claims_package_has_no_function_of_80_lines_or_more():
    import ast

    import sinklab.experiments.claims as package

    folder = Path(package.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno + 1 < 80, (path.name, node.name)
