"""Verdict logic on hand-made results."""

import pytest

from sinklab.experiments.claims import (
    CLAIMS,
    CONTRADICTED,
    MISSING,
    NOT_AT_SCALE,
    REPRODUCED,
    RunResult,
)
from sinklab.experiments.suites import SCALES, runs_for


def result(name: str, *sinks: float, loss: float = 3.0, slot: float | None = None) -> RunResult:
    sink = list(sinks) + [0.0] * (16 - len(sinks))
    return RunResult(name=name, sink_percent=sink, val_loss=loss, slot_sink=slot)


def claim(claim_id: str):
    return next(c for c in CLAIMS if c.id == claim_id)


def test_every_claim_names_runs_that_a_suite_trains():
    names = {r.name for r in runs_for("all", SCALES["tiny"])}
    for c in CLAIMS:
        assert set(c.runs) <= names, c.id


def test_missing_run_is_reported_as_missing():
    assert claim("lr-smaller-weaker").evaluate({"default": result("default", 20)}, "tiny").verdict == MISSING


@pytest.mark.parametrize(("low", "verdict"), [(5.0, REPRODUCED), (19.0, NOT_AT_SCALE), (30.0, CONTRADICTED)])
def test_smaller_learning_rate_weaker_sink(low, verdict):
    results = {"default": result("default", 20.0), "lr_x0.25": result("lr_x0.25", low)}
    assert claim("lr-smaller-weaker").evaluate(results, "tiny").verdict == verdict


def test_comparisons_need_a_sink_in_the_default_run():
    results = {"default": result("default", 0.5), "lr_x0.25": result("lr_x0.25", 0.0)}
    finding = claim("lr-smaller-weaker").evaluate(results, "tiny")
    assert finding.verdict == NOT_AT_SCALE
    assert "no sink in the default run" in finding.ours


def test_sink_emerges():
    assert claim("sink-emerges").evaluate({"default": result("default", 12)}, "tiny").verdict == REPRODUCED
    assert claim("sink-emerges").evaluate({"default": result("default", 2)}, "tiny").verdict == NOT_AT_SCALE


def test_fixed_token_moves_the_sink_to_its_position():
    c = claim("fixed-pos2")
    assert c.evaluate({"fixed_pos2": result("fixed_pos2", 0.0, 60.0, 0.0)}, "tiny").verdict == REPRODUCED
    assert c.evaluate({"fixed_pos2": result("fixed_pos2", 40.0, 10.0)}, "tiny").verdict == CONTRADICTED
    assert c.evaluate({"fixed_pos2": result("fixed_pos2", 1.0, 2.0)}, "tiny").verdict == NOT_AT_SCALE


def test_key_bias_absorbs_the_sink_on_its_slot():
    c = claim("k-bias")
    base = result("default", 20)
    assert (
        c.evaluate({"default": base, "kv_bias_k": result("kv_bias_k", 0.0, slot=70)}, "t").verdict
        == REPRODUCED
    )
    assert (
        c.evaluate({"default": base, "kv_bias_k": result("kv_bias_k", 18, slot=2)}, "t").verdict
        == CONTRADICTED
    )


def test_sigmoid_without_normalisation_has_no_sink():
    c = claim("sigmoid-nonorm")
    base = result("default", 20, loss=3.0)
    good = c.evaluate({"default": base, "sigmoid_nonorm": result("sigmoid_nonorm", 0.4, loss=3.1)}, "tiny")
    assert good.verdict == REPRODUCED
    assert "+0.10 nats" in good.ours
    bad = c.evaluate({"default": base, "sigmoid_nonorm": result("sigmoid_nonorm", 15.0)}, "tiny")
    assert bad.verdict == CONTRADICTED


def test_scale_up_claim_only_at_1b():
    results = {"default": result("default", 40), "sigmoid_nonorm": result("sigmoid_nonorm", 0.5)}
    assert claim("scale-1b").evaluate(results, "tiny").verdict == NOT_AT_SCALE
    assert claim("scale-1b").evaluate(results, "1b").verdict == REPRODUCED


def test_batch_size_no_effect():
    c = claim("batch-no-effect")
    same = {n: result(n, v) for n, v in (("default", 18), ("batch_x0.5", 16.5), ("batch_x2", 16.2))}
    assert c.evaluate(same, "tiny").verdict == REPRODUCED
    far = {n: result(n, v) for n, v in (("default", 18), ("batch_x0.5", 2), ("batch_x2", 60))}
    assert c.evaluate(far, "tiny").verdict == CONTRADICTED


def test_prefix_lm_sink_inside_the_prefix():
    c = claim("prefix-lm")
    base = result("default", 20)
    inside = result("prefix_5", 0, 0, 45, 0, 0, 0, 0, 0, 0)
    assert c.evaluate({"default": base, "prefix_5": inside}, "tiny").verdict == REPRODUCED
    after = result("prefix_5", 0, 0, 0, 0, 0, 30, 0, 0, 0)
    assert c.evaluate({"default": base, "prefix_5": after}, "tiny").verdict == CONTRADICTED


def test_a_variant_without_a_sink_contradicts_only_at_the_papers_scale():
    c = claim("post-ln")
    results = {"default": result("default", 20), "post_ln": result("post_ln", 0.0)}
    assert c.evaluate(results, "tiny").verdict == NOT_AT_SCALE
    assert c.evaluate(results, "60m").verdict == CONTRADICTED
    results["post_ln"] = result("post_ln", 12.0)
    assert c.evaluate(results, "tiny").verdict == REPRODUCED


def test_random_first_token_is_judged_against_the_default_without_its_bos():
    c = claim("random-x1")
    base = {"default": result("default", 18.0)}
    assert c.evaluate({**base, "random_x1": result("random_x1", 25.0)}, "tiny").verdict == REPRODUCED
    # No BOS-free baseline (a scale without a BOS): no sink on a random x1 contradicts the paper.
    assert c.evaluate({**base, "random_x1": result("random_x1", 0.0)}, "60m").verdict == CONTRADICTED
    # A BOS scale whose default has no sink without its BOS: the precondition does not hold.
    no_sink = {**base, "random_x1": result("random_x1", 0.0), "no_bos": result("no_bos", 0.5)}
    finding = c.evaluate(no_sink, "tiny")
    assert finding.verdict == NOT_AT_SCALE and "no_bos 0.50" in finding.ours
    sinks = {**base, "random_x1": result("random_x1", 0.0), "no_bos": result("no_bos", 12.0)}
    assert c.evaluate(sinks, "tiny").verdict == CONTRADICTED


def test_random_second_token_leaves_the_sink_on_the_first():
    c = claim("random-x2")
    base = {"default": result("default", 18.0)}
    assert c.evaluate({**base, "random_x2": result("random_x2", 21.0)}, "tiny").verdict == REPRODUCED
    assert c.evaluate({**base, "random_x2": result("random_x2", 0.0)}, "tiny").verdict == CONTRADICTED
    assert c.evaluate({**base, "random_x2": result("random_x2", 3.0)}, "tiny").verdict == NOT_AT_SCALE


def test_the_data_suite_trains_a_bos_free_default_only_where_the_scale_has_a_bos():
    assert "no_bos" in {r.name for r in runs_for("data", SCALES["tiny"])}
    assert "no_bos" not in {r.name for r in runs_for("data", SCALES["60m"])}


def test_too_little_data_means_no_sink_not_a_weaker_one():
    c = claim("data-amount")
    base = {"default": result("default", 18.0)}
    assert c.evaluate({**base, "data_1pct": result("data_1pct", 0.5)}, "tiny").verdict == REPRODUCED
    weaker = c.evaluate({**base, "data_1pct": result("data_1pct", 12.0)}, "tiny")
    assert weaker.verdict == NOT_AT_SCALE and "weaker" in weaker.ours
    assert c.evaluate({**base, "data_1pct": result("data_1pct", 19.0)}, "tiny").verdict == NOT_AT_SCALE
