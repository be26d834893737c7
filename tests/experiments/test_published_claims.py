"""The published sweeps' claims.json (tiny; ref as its sweep stands), recomputed from the file alone by a
second implementation of the rule: its own Student t quantile (Simpson's rule on the density, then
bisection), its own means and variances (the statistics module), its own reading of the verdict from the
tests."""

import json
import math
import statistics
from pathlib import Path

import pytest

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "results" / "tiny-seeded-claims.json"
DATA = json.loads(PUBLISHED.read_text())
# the reference scale's sweep, published as it stands (docs/results/ref/)
REF_DATA = json.loads((PUBLISHED.parent / "ref" / "claims.json").read_text())
ENTRIES = [("tiny", e) for e in DATA["claims"]] + [("ref", e) for e in REF_DATA["claims"]]
PRECONDITIONS = {"missing", "untested at CPU scales", "not at this scale"}


def t_density(x: float, df: float) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


def t_cdf_above_zero(t: float, df: float, steps: int = 2000) -> float:
    """P(0 < T < t) by Simpson's rule."""
    h = t / steps
    total = t_density(0.0, df) + t_density(t, df)
    total += sum((4 if i % 2 else 2) * t_density(i * h, df) for i in range(1, steps))
    return total * h / 3


def quantile(p: float, df: float) -> float:
    if math.isinf(df):
        return statistics.NormalDist().inv_cdf(p)
    lo, hi = 0.0, 200.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 0.5 + t_cdf_above_zero(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def interval(test: dict) -> tuple[float, float | None, float | None]:
    a, b = test["a"], test["b"]
    level = 0.90 if test["kind"] == "equivalent" else test["level"]
    if b is not None and test["paired"]:
        a, b = [x - y for x, y in zip(a, b, strict=True)], None
    if b is None:
        if len(a) < 2:
            return statistics.fmean(a), None, None
        est, se, df = statistics.fmean(a), math.sqrt(statistics.variance(a) / len(a)), len(a) - 1
    else:
        est = statistics.fmean(a) - statistics.fmean(b)
        if len(a) < 2 or len(b) < 2:
            return est, None, None
        va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
        se = math.sqrt(va + vb)
        df = math.inf if se == 0 else (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = 0.0 if se == 0 else quantile(1 - (1 - level) / 2, df) * se
    return est, est - half, est + half


def holds(test: dict) -> bool:
    est, lo, hi = interval(test)
    if lo is None:
        return False
    bound = test["bound"]
    if test["kind"] == "above":
        return lo >= bound
    if test["kind"] == "below":
        return hi <= bound
    if test["kind"] == "greater":
        return lo > 0 and est >= bound
    return -bound < lo and hi < bound  # equivalent


def verdict(entry: dict) -> str:
    if any(group and all(holds(t) for t in group) for group in entry["refuted_by"]):
        return "contradicted"
    if entry["requires"] and all(holds(t) for t in entry["requires"]):
        return "reproduced"
    return "inconclusive"


@pytest.mark.parametrize("scale,entry", ENTRIES, ids=[f"{s}-{e['id']}" for s, e in ENTRIES])
def test_every_published_verdict_recomputes_from_the_file(scale, entry):
    if not entry["requires"]:
        assert entry["verdict"] in PRECONDITIONS and entry["rule"]
        return
    assert verdict(entry) == entry["verdict"]
    for test in [*entry["requires"], *(t for group in entry["refuted_by"] for t in group)]:
        est, lo, hi = interval(test)
        assert est == pytest.approx(test["estimate"], abs=1e-9)
        if lo is not None:
            assert (lo, hi) == pytest.approx((test["lo"], test["hi"]), abs=1e-3)
        # every number a test read is one of the claim's published per-seed lists
        published = [values for run in entry["runs"].values() for values in run.values()]
        for values in (test["a"], test["b"]):
            assert values is None or values in published, (entry["id"], test["what"])


@pytest.mark.parametrize("data", [DATA, REF_DATA], ids=["tiny", "ref"])
def test_the_onset_is_the_latest_default_seed_that_grew_a_sink(data):
    onset = data["onset"]
    grown = [s for s in onset["per_seed"] if s is not None]
    assert onset["step"] == max(s for s, _ in grown) and onset["tokens"] == max(t for _, t in grown)


def test_not_yet_emerged_verdicts_rest_on_steps_or_tokens_short_of_the_onset():
    onset = DATA["onset"]
    for entry in DATA["claims"]:
        if "not yet emerged" in entry["rule"]:
            short = [
                name
                for name, run in entry["runs"].items()
                if min(run["steps"]) < onset["step"] or min(run["tokens"]) < onset["tokens"]
            ]
            assert short, entry["id"]


def test_no_tiny_claim_is_undecidable_by_construction():
    """Every difference a tiny claim requires that points the claim's way by at least the smallest effect
    worth calling, yet is not decided at 3 seeds, would be decided by a finite number of seeds of the same
    spread (at most 10 here); the ones not pointing that way are inconclusive because of the effect, not of
    the rule."""
    from sinklab.experiments.claims.rule import seeds_needed

    needed = {}
    for entry in DATA["claims"]:
        for test in entry["requires"]:
            if test["kind"] != "greater" or test["holds"] or test["estimate"] < max(test["bound"], 1e-9):
                continue
            noisier = max(test["a"], test["b"], key=statistics.pvariance)
            both = min(statistics.pvariance(test["a"]), statistics.pvariance(test["b"])) > 0
            needed[(entry["id"], test["what"])] = seeds_needed(noisier, test["estimate"], both=both)
    assert needed and all(n is not None and n <= 10 for n in needed.values()), needed


def test_the_page_and_the_file_agree():
    """The counts on docs/results/tiny-seeded.md are the file's verdicts."""
    from collections import Counter

    page = (PUBLISHED.parent / "tiny-seeded.md").read_text()
    counts = Counter(c["verdict"] for c in DATA["claims"])
    header = page[page.index("<!-- sweep-table:start -->") :].split("\n\n", 1)[0]
    for verdict, n in counts.items():
        assert f"{verdict} {n}" in " ".join(header.split()), verdict


def test_judging_the_published_file_again_gives_the_same_verdicts():
    """The file is complete: the current rule, fed only the file's per-seed values and onsets, agrees."""
    from sinklab.experiments.claims import build_claims
    from sinklab.experiments.claims.published import published_runs, rejudge
    from sinklab.experiments.claims.rule import Onset
    from sinklab.experiments.suites import SCALES, scale_config

    scale = SCALES["tiny"]
    claims = build_claims(scale.windows, scale_config(scale).train.weight_decay, scale.control)
    onset = Onset([tuple(s) if s else None for s in DATA["onset"]["per_seed"]])
    judged = rejudge(published_runs(DATA), "tiny", onset, list(claims))
    assert [(c.id, f.verdict) for c, f, _ in judged] == [(e["id"], e["verdict"]) for e in DATA["claims"]]
