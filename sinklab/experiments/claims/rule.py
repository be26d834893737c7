"""The one rule every claim is judged by: confidence intervals of seed means, at one level.

* A run's value is, per seed, the mean of its last `LAST_EVALS` evaluations; a claim reads the seeds' values.
* Two runs differ when the 95 % confidence interval of the difference of their means (Welch's t; the paired t
  for two quantities of the same seeds) excludes 0 *and* the difference is at least the smallest effect
  worth calling: one head's worth (100 / (layers x heads) points) for a share of heads, `LOSS_MARGIN` for a
  loss, nothing for a ratio. The interval narrows with seeds; the head floor bounds the effect, never the
  noise.
* A run *has a sink* when the 95 % interval of its mean lies at or above `SINK_PRESENT` %; it *lost the sink*
  when the interval lies at or below `SINK_ABSENT` % and the default is above it by the difference rule, so a
  default whose seeds do not all grow a sink (a wide interval) weakens every absence verdict.
* Two runs are *the same* (equivalence, TOST) when the 90 % interval of their difference lies within
  +- the floor (one head's worth; `LOSS_MARGIN` nats for a loss).
* Onset: per default seed, the first evaluation with Sink_1 >= `SINK_PRESENT`; the rule's onset is the latest
  of them (the step by which every default seed that grows a sink has one). A run without a sink that
  trained fewer steps or tokens than that is no evidence ("not at this scale", not yet emerged).

A claim is reproduced when every test it requires holds, contradicted when every test of one of its
refuting groups holds, and inconclusive otherwise. A verdict decided before any test (a missing run, no
sink in any default seed, a claim about another scale, a claim a BOS scale cannot test) says why instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sinklab.experiments.claims import stats
from sinklab.experiments.claims.results import SINK_1, Quantity, Results, Run

REPRODUCED = "reproduced"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_AT_SCALE = "not at this scale"
UNTESTED = "untested at CPU scales"
MISSING = "missing"
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_AT_SCALE, UNTESTED, MISSING)

LEVEL = 0.95  # two-sided confidence level of every interval (equivalence: 1 - 2 x 0.05 = 90 %)
SINK_PRESENT = 5.0  # Sink (%) the interval must clear for "a sink"
SINK_ABSENT = 1.0  # ... and stay under for "no sink" (the paper's "no sink" runs are 0.0-0.8 %)
LOSS_MARGIN = 0.1  # nats: "similar loss" within it (TOST), "hurts the loss" beyond it
ONSET_FACTOR = 1.0  # a run without a sink counts once it trained this x the default's (latest-seed) onset
# where the paper's own training budget holds by construction (pythia: the public Pythia series, trained far
# past it; sinklab.experiments.pythia_trajectory)
PAPER_SCALES = ("60m", "1b", "pythia")
DEFAULT_NO_SINK = "no sink in any default seed"

ABOVE, BELOW, GREATER, EQUIVALENT = "above", "below", "greater", "equivalent"


def decide(
    kind: str, a: Sequence[float], b: Sequence[float] | None, bound: float, paired: bool
) -> tuple[stats.Interval, bool]:
    """One test: its interval and whether it holds (see the module docstring for each kind)."""
    level = 1 - 2 * (1 - LEVEL) if kind == EQUIVALENT else LEVEL
    if not a or (b is not None and not b):
        return stats.Interval(float("nan"), None, None), False  # not recorded: the judge says "missing"
    if b is None:
        interval = stats.one_sample(a, level)
    else:
        interval = stats.paired(a, b, level) if paired else stats.welch(a, b, level)
    lo, hi, estimate = interval.lo, interval.hi, interval.estimate
    if lo is None or hi is None:
        return interval, False
    holds = {
        ABOVE: lo >= bound,
        BELOW: hi <= bound,
        GREATER: lo > 0 and estimate >= bound,
        EQUIVALENT: lo > -bound and hi < bound,
    }[kind]
    return interval, holds


@dataclass
class Test:
    """One decision of the rule, with the per-seed values it rests on."""

    kind: str
    what: str  # e.g. "default Sink_1 > wd_0 Sink_1"
    a: list[float]
    b: list[float] | None
    bound: float  # the threshold (above/below), the effect floor (greater) or the margin (equivalent)
    paired: bool = False
    interval: stats.Interval = field(init=False)
    holds: bool = field(init=False)

    def __post_init__(self) -> None:
        self.interval, self.holds = decide(self.kind, self.a, self.b, self.bound, self.paired)

    def text(self) -> str:
        level = "90 %" if self.kind == EQUIVALENT else f"{LEVEL:.0%}".replace("%", " %")
        test = "paired t" if self.paired else "Welch t" if self.b is not None else "t"
        verb = {
            ABOVE: f"interval >= {self.bound:g}",
            BELOW: f"interval <= {self.bound:g}",
            GREATER: f"interval > 0 and difference >= {self.bound:.3g} (smallest effect worth calling)",
            EQUIVALENT: f"interval within ±{self.bound:.3g}",
        }[self.kind]
        name = "mean" if self.b is None else "difference"
        mark = "holds" if self.holds else "does not hold"
        return f"{self.what}: {name} {self.interval.text()} ({level}, {test}); {verb}: {mark}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "what": self.what,
            "a": self.a,
            "b": self.b,
            "bound": self.bound,
            "paired": self.paired,
            "level": LEVEL,
            "estimate": self.interval.estimate,
            "lo": self.interval.lo,
            "hi": self.interval.hi,
            "holds": self.holds,
        }


def combine(requires: list[Test], refuted_by: list[list[Test]]) -> str:
    """The verdict from the tests: contradicted if every test of a refuting group holds, reproduced if
    every required test holds, inconclusive otherwise."""
    if any(group and all(t.holds for t in group) for group in refuted_by):
        return CONTRADICTED
    if requires and all(t.holds for t in requires):
        return REPRODUCED
    return INCONCLUSIVE


@dataclass
class Onset:
    """When each default seed first reached SINK_PRESENT (step, tokens); None for a seed that never did."""

    per_seed: list[tuple[int, int] | None]

    @property
    def grown(self) -> list[tuple[int, int]]:
        return [s for s in self.per_seed if s is not None]

    @property
    def step(self) -> int:
        return max(s for s, _ in self.grown)

    @property
    def tokens(self) -> int:
        return max(t for _, t in self.grown)

    def text(self) -> str:
        seeds = ", ".join("never" if s is None else str(s[0]) for s in self.per_seed)
        text = f"default onset step {self.step} ({self.tokens / 1e6:.1f}M tokens; per seed {seeds})"
        missing = len(self.per_seed) - len(self.grown)
        return text + (f"; {missing} of {len(self.per_seed)} default seeds grew no sink" if missing else "")


def onset(default: Run) -> Onset | None:
    """Each default seed's onset; None when no seed grew a sink."""
    per_seed: list[tuple[int, int] | None] = []
    for r in default.seeds:
        hit = next(
            (
                (int(h["step"]), int(h.get("tokens", 0)))
                for h in r.history
                if (h.get("sink_percent") or [0.0])[0] >= SINK_PRESENT
            ),
            None,
        )
        if hit is None and not r.history and r.sink(1) >= SINK_PRESENT:
            hit = (0, 0)  # hand-made results without a log: the sink was there from the start
        per_seed.append(hit)
    result = Onset(per_seed)
    return result if result.grown else None


class Rule:
    """The one rule, bound to a set of results (the default run gives the onset); it records every
    per-seed value a claim reads, for claims.json."""

    def __init__(
        self,
        results: Results,
        scale: str,
        baseline: str = "default",
        bos: bool = False,
        known_onset: Onset | None = None,
    ) -> None:
        self.results = results
        self.scale = scale
        self.bos = bos  # every sequence of this scale starts with the same BOS
        self.baseline_name = baseline
        self.baseline = results.get(baseline)
        # known_onset: the default's per-seed onsets where the logs are not at hand (a published claims.json)
        self.onset = known_onset or (onset(self.baseline) if self.baseline else None)
        self.read: dict[str, dict[str, list[float]]] = {}

    @property
    def default_has_sink(self) -> bool:
        """At least one default seed grew a sink (the sinkless ones count through the intervals)."""
        return self.onset is not None

    def values(self, name: str, q: Quantity) -> list[float]:
        values = [v for r in self.results[name].seeds if (v := q(r)) is not None]
        self.read.setdefault(name, {})[q.key] = values
        return values

    def floor(self, q: Quantity, *names: str) -> float:
        """The smallest effect worth calling on `q`: one head's worth of the run with the most heads,
        LOSS_MARGIN for a loss, nothing for a ratio."""
        if q.unit == "nats":
            return LOSS_MARGIN
        if not q.heads:
            return 0.0
        # the finer of the runs compared: a run with fewer heads must not make a change undecidable
        return min((w for n in names if (w := self.results[n].head_worth) > 0), default=0.0)

    def above(self, name: str, q: Quantity, bound: float = SINK_PRESENT) -> Test:
        return Test(ABOVE, f"{name} {q.label} >= {bound:g}", self.values(name, q), None, bound)

    def below(self, name: str, q: Quantity, bound: float = SINK_ABSENT) -> Test:
        return Test(BELOW, f"{name} {q.label} <= {bound:g}", self.values(name, q), None, bound)

    def greater(self, a: str, qa: Quantity, b: str, qb: Quantity | None = None) -> Test:
        """a's qa above b's qb (the same quantity if qb is None); paired when both are one run's seeds."""
        qb = qb or qa
        what = f"{a} {qa.label} > {b} {qb.label}" if a != b else f"{a}: {qa.label} > {qb.label}"
        va, vb = self.values(a, qa), self.values(b, qb)
        paired = a == b and len(va) == len(vb)
        return Test(GREATER, what, va, vb, self.floor(qa, a, b), paired)

    def equivalent(self, a: str, b: str, q: Quantity) -> Test:
        margin = self.floor(q, a, b)
        return Test(
            EQUIVALENT, f"{a} {q.label} ≈ {b} {q.label}", self.values(a, q), self.values(b, q), margin
        )

    def lost_sink(self, name: str, q: Quantity = SINK_1) -> list[Test]:
        """No sink in `name` (interval <= SINK_ABSENT) where the default has one (Sink_1 beyond the rule)."""
        return [self.below(name, q), self.greater(self.baseline_name, SINK_1, name, q)]

    def trained_long_enough(self, run: Run) -> bool:
        """Whether a run without a sink counts as evidence (ONSET_FACTOR x the default's onset)."""
        if self.onset is None:
            return self.scale in PAPER_SCALES
        step, tokens = self.onset.step, self.onset.tokens
        return run.steps >= ONSET_FACTOR * step and run.tokens >= ONSET_FACTOR * tokens

    def not_yet(self, names: Sequence[str], q: Quantity = SINK_1) -> list[str]:
        """Runs with no sink (mean <= SINK_ABSENT) that trained too briefly to count."""
        out = []
        for name in names:
            stat = self.results[name].stat(q)
            if (stat is None or stat.mean <= SINK_ABSENT) and not self.trained_long_enough(
                self.results[name]
            ):
                out.append(name)
        return out

    def onset_text(self) -> str:
        return self.onset.text() if self.onset else "no default seed has a sink onset"


def seeds_needed(values: Sequence[float], margin: float, both: bool = True, most: int = 200) -> int | None:
    """The fewest seeds per run at which the 95 % interval of a difference of two means is narrower than
    `margin` on either side, each run spread like `values` (`both`), or only one of them (the other has no
    spread, e.g. a run at 0.00 in every seed): a true difference of `margin` is decided from there on.
    None: more than `most`; 1 when the spread is 0."""
    sd = stats.variance(values) ** 0.5
    if sd == 0.0:
        return 1
    for n in range(2, most + 1):
        df, scale = (2 * (n - 1), (2 / n) ** 0.5) if both else (n - 1, (1 / n) ** 0.5)
        if stats.t_quantile(0.5 + LEVEL / 2, df) * sd * scale < margin:
            return n
    return None
