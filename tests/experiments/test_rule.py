"""The one rule, branch by branch, with hand-made seed values (no training, no files)."""

import math

import pytest

from sinklab.experiments.claims import (
    CLAIMS,
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_AT_SCALE,
    REPRODUCED,
    RunResult,
    group_results,
    stats,
)
from sinklab.experiments.claims.rule import (
    ABOVE,
    BELOW,
    EQUIVALENT,
    GREATER,
    Rule,
    combine,
    seeds_needed,
)
from sinklab.experiments.claims.rule import (
    Test as RuleTest,
)


def spread(mean: float, sd: float, n: int) -> list[float]:
    """n values with exactly this mean and sample sd (evenly spaced)."""
    z = [i - (n - 1) / 2 for i in range(n)]
    unit = math.sqrt(sum(v * v for v in z) / (n - 1))
    return [mean + sd * v / unit for v in z]


def runs(**values: list[float]):
    """Hand-made runs: Sink_1 per seed (no log: a seed at >= 5 % had its sink from the start)."""
    single = [
        RunResult(name=name, sink_percent=[v, 0.0, 0.0, 0.0], val_loss=3.0, seed=seed, layers=2, heads=4)
        for name, vs in values.items()
        for seed, v in enumerate(vs)
    ]
    return group_results(single)


def judge(claim_id: str, **values: list[float]) -> str:
    claim = next(c for c in CLAIMS if c.id == claim_id)
    return claim.evaluate(runs(**values), "tiny").verdict


# ------------------------------------------------------------------------------------- the t intervals


@pytest.mark.parametrize(
    ("df", "q"), [(1, 12.7062), (2, 4.3027), (3, 3.1824), (10, 2.2281), (30, 2.0423), (math.inf, 1.9600)]
)
def test_t_quantile_matches_the_table(df, q):
    assert stats.t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)


def test_welch_interval_and_its_degrees_of_freedom():
    interval = stats.welch([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], 0.95)  # sd 1 against none: df = 2
    assert interval.df == pytest.approx(2.0)
    half = 4.3027 / math.sqrt(3)
    assert interval.lo == pytest.approx(2.0 - half, abs=1e-3) and interval.hi == pytest.approx(
        2.0 + half, abs=1e-3
    )
    assert stats.welch([1.0], [0.0, 0.0], 0.95).lo is None  # one seed: no interval


def test_the_same_15_point_gap_at_sd_15_is_inconclusive_with_3_seeds_and_decided_with_10():
    for n, expected in ((3, INCONCLUSIVE), (10, REPRODUCED)):
        default, weaker = spread(45.0, 15.0, n), spread(30.0, 15.0, n)
        assert judge("lr-smaller-weaker", default=default, **{"lr_x0.25": weaker}) == expected, n
    # ... and the other way round, contradicted only with enough seeds
    for n, expected in ((3, INCONCLUSIVE), (10, CONTRADICTED)):
        default, stronger = spread(30.0, 15.0, n), spread(45.0, 15.0, n)
        assert judge("lr-smaller-weaker", default=default, **{"lr_x0.25": stronger}) == expected, n


def test_one_head_bounds_the_effect_worth_calling_never_the_noise():
    # 5 points apart with almost no spread: the interval excludes 0, but 5 < one head (12.5 points)
    assert judge("lr-smaller-weaker", default=[30.0, 30.1, 29.9], **{"lr_x0.25": [25.0, 25.1, 24.9]}) == (
        INCONCLUSIVE
    )
    # 13 points apart: beyond one head, decided
    assert judge("lr-smaller-weaker", default=[30.0, 30.1, 29.9], **{"lr_x0.25": [17.0, 17.1, 16.9]}) == (
        REPRODUCED
    )


# ---------------------------------------------------------------------- presence and absence, one rule


TINY_DEFAULT = [32.21, 1.58, 12.17]  # the published tiny default's three seeds (one grew no sink)


def test_a_default_with_a_sinkless_seed_weakens_absence_verdicts():
    sinkless = [0.0, 0.0, 0.0]
    assert judge("wd-zero-sink", default=TINY_DEFAULT, wd_0=sinkless) == INCONCLUSIVE
    assert (
        judge("sigmoid-robust", default=TINY_DEFAULT, **dict.fromkeys(_sigmoid(), sinkless)) == INCONCLUSIVE
    )
    # the same variant against a default whose seeds all grew a sink: decided
    steady = [30.0, 28.0, 32.0]
    assert judge("wd-zero-sink", default=steady, wd_0=sinkless) == CONTRADICTED
    assert judge("sigmoid-robust", default=steady, **dict.fromkeys(_sigmoid(), sinkless)) == REPRODUCED
    # ... or with ten seeds spread like the tiny default's
    ten = spread(sum(TINY_DEFAULT) / 3, 15.3, 10)
    assert judge("wd-zero-sink", default=ten, wd_0=[0.0] * 10) == CONTRADICTED


def _sigmoid():
    return ("sigmoid_nonorm_lr_x2", "sigmoid_nonorm_lr_x0.25", "sigmoid_nonorm_wd_0")


def test_presence_needs_the_interval_above_the_threshold():
    assert judge("v-bias", default=[30.0, 31.0, 29.0], kv_bias_v=[20.0, 21.0, 19.0]) == REPRODUCED
    assert judge("v-bias", default=[30.0, 31.0, 29.0], kv_bias_v=[1.0, 30.0, 15.0]) == INCONCLUSIVE
    assert judge("sink-emerges", default=TINY_DEFAULT) == INCONCLUSIVE  # 2 of 3 seeds: the mean is not sure
    assert judge("sink-emerges", default=[15.0, 16.0, 14.0]) == REPRODUCED


def test_no_sink_in_any_default_seed_is_not_at_this_scale():
    assert judge("wd-zero-sink", default=[0.0, 0.5, 0.0], wd_0=[0.0, 0.0, 0.0]) == NOT_AT_SCALE


def test_sameness_is_an_equivalence_test():
    same = {"batch_x0.5": [30.5, 31.0, 30.0], "batch_x2": [29.5, 29.0, 30.0]}
    assert judge("batch-no-effect", default=[30.0, 31.0, 29.0], **same) == REPRODUCED
    # the tiny default's spread: even identical means are not shown to be the same
    noisy = {"batch_x0.5": TINY_DEFAULT, "batch_x2": TINY_DEFAULT}
    assert judge("batch-no-effect", default=TINY_DEFAULT, **noisy) == INCONCLUSIVE


def test_every_test_kind_and_the_verdict_from_tests():
    assert RuleTest(ABOVE, "a", [10.0, 11.0, 9.0], None, 5.0).holds
    assert not RuleTest(ABOVE, "a", [10.0, 1.0, 9.0], None, 5.0).holds
    assert RuleTest(BELOW, "a", [0.0, 0.0, 0.0], None, 1.0).holds
    assert RuleTest(GREATER, "a", [10.0, 11.0, 9.0], [0.0, 0.0, 0.0], 5.0).holds
    assert not RuleTest(GREATER, "a", [10.0, 11.0, 9.0], [0.0, 0.0, 0.0], 12.5).holds  # below the floor
    assert RuleTest(
        GREATER, "a", [10.0, 11.0, 9.0], [9.0, 10.0, 8.0], 0.5, paired=True
    ).holds  # +1 in each seed
    assert RuleTest(EQUIVALENT, "a", [3.00, 3.01, 2.99], [3.02, 3.03, 3.01], 0.1).holds
    yes, no = RuleTest(ABOVE, "a", [9.0, 9.0], None, 5.0), RuleTest(BELOW, "a", [9.0, 9.0], None, 1.0)
    assert combine([yes], [[no]]) == REPRODUCED
    assert combine([no], [[yes]]) == CONTRADICTED
    assert combine([no], [[no]]) == INCONCLUSIVE


def test_losses_go_through_the_same_rule():
    base = dict(default=[30.0, 31.0, 29.0], sigmoid_nonorm=[0.0, 0.0, 0.0])
    results = runs(**base)
    for loss, expected in ((3.02, REPRODUCED), (3.5, CONTRADICTED)):
        for r in results["sigmoid_nonorm"].seeds:
            r.val_loss = loss + 0.01 * r.seed
        for r in results["default"].seeds:
            r.val_loss = 3.0 + 0.01 * r.seed
        claim = next(c for c in CLAIMS if c.id == "sigmoid-nonorm")
        assert claim.evaluate_with(Rule(results, "tiny")).verdict == expected, loss


# ------------------------------------------------------------- what a scale can decide, from its default


def test_which_claims_the_tiny_scale_can_decide_from_its_default():
    """From the published tiny default (32.21, 1.58, 12.17; sd 15.3): a variant with no sink in any seed is
    decided against it from 7 seeds on (the interval's half-width below the default's mean, 15.3 points);
    a 15-point change of a run spread like the default needs 10; a comparison within one run (a fixed
    token's position, a slot against x1) or between runs of small spread is decidable at 3 seeds. No claim is
    undecidable by construction: each needs a finite number of seeds."""
    mean = sum(TINY_DEFAULT) / 3
    absence = seeds_needed(TINY_DEFAULT, mean, both=False)
    assert absence is not None and 3 < absence <= 10
    change = seeds_needed(TINY_DEFAULT, 15.0, both=True)
    assert change is not None and 3 < change <= 20
    assert seeds_needed([22.0, 16.9, 28.2], 22.0, both=False) <= 3  # fixed_pos1 against its other positions


def test_the_onset_is_every_default_seeds_and_a_sinkless_seed_is_said():
    from sinklab.experiments.claims.rule import onset

    def seed(number: int, first: int | None) -> RunResult:
        history = [
            {"step": s, "tokens": 512 * s, "sink_percent": [20.0 if s >= (first or 10**9) else 2.0]}
            for s in range(0, 5000, 500)
        ]
        return RunResult("default", [history[-1]["sink_percent"][0]], 3.0, history=history, seed=number)

    default = group_results([seed(0, 1000), seed(1, None), seed(2, 2500)])["default"]
    found = onset(default)
    assert found.per_seed == [(1000, 512_000), None, (2500, 1_280_000)]
    assert (found.step, found.tokens) == (2500, 1_280_000)  # the latest seed that grew one
    assert "per seed 1000, never, 2500" in found.text()
    assert "1 of 3 default seeds grew no sink" in found.text()
    assert onset(group_results([seed(0, None), seed(1, None)])["default"]) is None  # no seed: no onset
