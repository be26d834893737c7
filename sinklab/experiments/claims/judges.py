"""The kinds of claim, each a judge: a function of the Rule that returns a Finding. Every judge states the
tests a reproduction requires and the groups of tests that would refute the claim; `rule.combine` turns
them into the verdict, the same way for every claim (claims.json stores the tests, so a reader can redo it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sinklab.experiments.claims.results import (
    SINK_1,
    Quantity,
    max_sink,
    sink_at_length,
    sink_k,
    slot_sink,
    val_loss,
)
from sinklab.experiments.claims.rule import (
    CONTRADICTED,
    DEFAULT_NO_SINK,
    INCONCLUSIVE,
    MISSING,
    NOT_AT_SCALE,
    PAPER_SCALES,
    REPRODUCED,
    SINK_PRESENT,
    Rule,
    Test,
    combine,
)


@dataclass
class Finding:
    ours: str
    verdict: str
    rule: str = ""  # why: the tests and their intervals, or the precondition that decided it
    requires: list[Test] = field(default_factory=list)
    refuted_by: list[list[Test]] = field(default_factory=list)

    def tests_json(self) -> dict[str, Any]:
        return {
            "requires": [t.to_json() for t in self.requires],
            "refuted_by": [[t.to_json() for t in group] for group in self.refuted_by],
        }


Judge = Callable[[Rule], Finding]


def stat_text(rule: Rule, name: str, q: Quantity = SINK_1) -> str:
    stat = rule.results[name].stat(q)
    return stat.text() if stat else "–"


def ours_text(rule: Rule, pairs: Iterable[tuple[str, Quantity]]) -> str:
    return "; ".join(f"{name} {q.label} {stat_text(rule, name, q)}" for name, q in dict.fromkeys(pairs))


def decided(rule: Rule, ours: str, requires: list[Test], refuted_by: list[list[Test]]) -> Finding:
    """The verdict from the tests; a quantity a run did not record is missing, never "no sink"."""
    for t in (*requires, *(t for group in refuted_by for t in group)):
        if not t.a or (t.b is not None and not t.b):
            return Finding(ours, MISSING, f"not recorded: {t.what}")
    verdict = combine(requires, refuted_by)
    # the tests a reproduction requires, and the refuting tests that hold (they explain a contradiction)
    shown = dict.fromkeys(t.text() for t in (*requires, *(t for g in refuted_by for t in g if t.holds)))
    why = "; ".join(shown)
    tests = (*requires, *(t for g in refuted_by for t in g))
    against_default = any(rule.baseline_name in t.what.split() for t in tests)
    if against_default and rule.onset and len(rule.onset.grown) < len(rule.onset.per_seed):
        why += f" ({rule.onset.text()}, which widens every interval with the default)"
    return Finding(ours, verdict, why, requires, refuted_by)


def precondition(rule: Rule, ours: str, names: Sequence[str] = (), q: Quantity = SINK_1) -> Finding | None:
    """The verdicts decided before any test: no sink in any default seed; a run with no sink that trained
    too briefly to count (not yet emerged)."""
    if not rule.default_has_sink:
        if rule.scale in PAPER_SCALES:
            return None  # the paper's budget: a missing default sink is itself evidence
        return Finding(ours, NOT_AT_SCALE, DEFAULT_NO_SINK)
    if late := rule.not_yet(names, q):
        return Finding(
            ours,
            NOT_AT_SCALE,
            f"not yet emerged: {', '.join(late)} has no sink but trained less than the {rule.onset_text()}",
        )
    return None


def emerges(rule: Rule) -> Finding:
    """Claim: the default grows a sink on x1."""
    ours = ours_text(rule, [("default", SINK_1)]) + f" ({rule.onset_text()})"
    if not rule.default_has_sink and rule.scale not in PAPER_SCALES:
        return Finding(ours, NOT_AT_SCALE, "no default seed grew a sink within this scale's budget")
    refute = [[rule.below("default", SINK_1)]] if rule.scale in PAPER_SCALES else []
    return decided(rule, ours, [rule.above("default", SINK_1)], refute)


def stronger(high: str, low: str, q: Quantity = SINK_1, low_q: Quantity | None = None) -> Judge:
    """Claim: run `high` has a stronger sink (on q) than run `low` (on low_q)."""
    low_q = low_q or q

    def judge(rule: Rule) -> Finding:
        ours = ours_text(rule, [(high, q), (low, low_q)])
        if (early := precondition(rule, ours)) is not None:
            return early
        finding = decided(
            rule, ours, [rule.greater(high, q, low, low_q)], [[rule.greater(low, low_q, high, q)]]
        )
        weaker = (low, low_q) if finding.verdict == REPRODUCED else (high, q)
        if finding.verdict != INCONCLUSIVE and (late := precondition(rule, ours, [weaker[0]], weaker[1])):
            return late
        return finding

    return judge


def same(names: Sequence[str], q: Quantity = SINK_1) -> Judge:
    """Claim: these runs do not differ from the first (equivalence within one head's worth, TOST)."""

    def judge(rule: Rule) -> Finding:
        ours = ours_text(rule, [(n, q) for n in names])
        if (early := precondition(rule, ours, names[1:], q)) is not None:
            return early
        base = names[0]
        requires = [rule.equivalent(base, n, q) for n in names[1:]]
        refuted = [[rule.greater(a, q, b, q)] for n in names[1:] for a, b in ((base, n), (n, base))]
        return decided(rule, ours, requires, refuted)

    return judge


def present(names: Sequence[str], q: Quantity = SINK_1) -> Judge:
    """Claim: every run in `names` has a sink (on q)."""

    def judge(rule: Rule) -> Finding:
        ours = ours_text(rule, [(n, q) for n in names])
        if (early := precondition(rule, ours)) is not None:
            return early
        finding = decided(
            rule, ours, [rule.above(n, q) for n in names], [rule.lost_sink(n, q) for n in names]
        )
        if finding.verdict != REPRODUCED and (late := precondition(rule, ours, names, q)):
            return late
        return finding

    return judge


def absent(names: Sequence[str], q: Quantity = SINK_1, loss: str = "") -> Judge:
    """Claim: no run in `names` has a sink (on q); `loss`: "similar" (TOST within LOSS_MARGIN of the
    default) or "worse" (beyond LOSS_MARGIN) as well."""

    def judge(rule: Rule) -> Finding:
        pairs = [(n, q) for n in names] + ([(n, val_loss) for n in ("default", *names)] if loss else [])
        ours = ours_text(rule, pairs)
        if (early := precondition(rule, ours, names, q)) is not None:
            return early
        requires = [t for n in names for t in rule.lost_sink(n, q)]
        refuted = [[rule.above(n, q)] for n in names]
        for n in names:
            same_loss = rule.equivalent(n, "default", val_loss)
            worse = rule.greater(n, val_loss, "default", val_loss)
            if loss == "similar":
                requires.append(same_loss)
                refuted += [[worse], [rule.greater("default", val_loss, n, val_loss)]]
            elif loss == "worse":
                requires.append(worse)
                refuted.append([same_loss])
        return decided(rule, ours, requires, refuted)

    return judge


def sink_on(name: str, k: int, others: tuple[int, ...]) -> Judge:
    """Claim: in run `name` the sink sits on position k, above every other position in `others`."""
    anywhere = max_sink(sorted((k, *others)))

    def judge(rule: Rule) -> Finding:
        ours = ours_text(rule, [(name, sink_k(j)) for j in sorted((k, *others))])
        if (early := precondition(rule, ours, [name], anywhere)) is not None:
            return early
        requires = [rule.above(name, sink_k(k))]
        requires += [rule.greater(name, sink_k(k), name, sink_k(j)) for j in others]
        refuted = [[rule.greater(name, sink_k(j), name, sink_k(k))] for j in others]
        return decided(rule, ours, requires, [*refuted, rule.lost_sink(name, anywhere)])

    return judge


def slot_takes(name: str, leaves_first: bool = False) -> Judge:
    """Claim: run `name`'s sink slot (bias / sink token) takes the sink, and x1 keeps none
    (`leaves_first`: the slot has a sink, whatever x1 keeps)."""

    def judge(rule: Rule) -> Finding:
        ours = ours_text(rule, [(name, slot_sink), (name, SINK_1)])
        if (early := precondition(rule, ours)) is not None:
            return early
        requires = [rule.above(name, slot_sink)]
        refuted = [rule.lost_sink(name, slot_sink)]
        if not leaves_first:
            requires += rule.lost_sink(name, SINK_1)
            refuted.append([rule.above(name, SINK_1)])
        finding = decided(rule, ours, requires, refuted)
        if finding.verdict != REPRODUCED and (late := precondition(rule, ours, [name], slot_sink)):
            return late
        return finding

    return judge


def prefix(name: str, p: int) -> Judge:
    """Claim: with a bidirectional prefix of p tokens the sink sits inside it, above the tokens after it."""
    inside, after = max_sink(range(1, p + 1)), max_sink(range(p + 1, 2 * p + 1))

    def judge(rule: Rule) -> Finding:
        ours = ours_text(rule, [(name, inside), (name, after)])
        if (early := precondition(rule, ours, [name], max_sink(range(1, 2 * p + 1)))) is not None:
            return early
        requires = [rule.above(name, inside), rule.greater(name, inside, name, after)]
        refuted = [[rule.greater(name, after, name, inside)], rule.lost_sink(name, inside)]
        return decided(rule, ours, requires, refuted)

    return judge


def too_little_data(run: str) -> Judge:
    """Claim: with too little data no sink emerges; at a CPU scale a sink with a fraction of its data is no
    contradiction (the paper's threshold is an absolute amount, 50M-100M tokens)."""
    inner = absent((run,))

    def judge(rule: Rule) -> Finding:
        finding = inner(rule)
        if finding.verdict == CONTRADICTED and rule.scale not in PAPER_SCALES:
            why = "a sink with this fraction of the data at this scale; the paper's threshold is 50M-100M "
            why += "tokens"
            return Finding(finding.ours, NOT_AT_SCALE, why)
        return finding

    return judge


def lower(high: str, low: str, q: Quantity) -> Judge:
    """Claim on a quantity of the final model: `high` above `low` by the rule (no head floor)."""

    def judge(rule: Rule) -> Finding:
        ours = ours_text(rule, [(high, q), (low, q)])
        if (early := precondition(rule, ours)) is not None:
            return early
        return decided(rule, ours, [rule.greater(high, q, low, q)], [[rule.greater(low, q, high, q)]])

    return judge


def below_one(name: str, q: Quantity, control: str) -> Judge:
    """Claim: `q` of run `name` is below 1 by the rule, and below the sinkless control's."""

    def judge(rule: Rule) -> Finding:
        ours = ours_text(rule, [(name, q), (control, q)])
        if (early := precondition(rule, ours)) is not None:
            return early
        requires = [rule.below(name, q, 1.0), rule.greater(control, q, name, q)]
        refuted = [[rule.above(name, q, 1.0)], [rule.greater(name, q, control, q)]]
        return decided(rule, ours, requires, refuted)

    return judge


def length_fall(short: int, long: int, eps: float) -> Quantity:
    """How far Sink_1^eps falls from T = short to T = long, per seed (points)."""
    lo, hi = sink_at_length(short, eps), sink_at_length(long, eps)

    def final(run: Any) -> float | None:
        a, b = lo(run), hi(run)
        return None if a is None or b is None else a - b

    return Quantity(
        f"fall_eps{eps:g}_T{short}_{long}", f"fall of Sink_1^{eps:g} T={short}->{long}", "%", final=final
    )


def falls_with_length(control: str) -> Judge:
    """Claim (Fig. 3): Sink_1 falls as T grows, at every ε measured, and further than in a sinkless control
    (a head spread evenly over T keys falls with T by arithmetic alone)."""

    def judge(rule: Rule) -> Finding:
        if (early := precondition(rule, ours_text(rule, [("default", SINK_1)]))) is not None:
            return early
        measured = [r.by_length for r in rule.results["default"].seeds if r.by_length]
        if not measured or len(measured) < len(rule.results["default"].seeds):
            return Finding("not measured (needs each default seed's final model)", MISSING, "not measured")
        lengths = sorted(set.intersection(*(set(m["lengths"]) for m in measured)))
        grid = [e for e in measured[0]["eps"] if all(f"{e:g}" in m["sink_1"] for m in measured)]
        if len(lengths) < 2 or not grid:
            return Finding("fewer than two lengths measured", MISSING, "not measured")
        short, long = lengths[0], lengths[-1]
        pairs = [("default", q) for e in grid for q in (sink_at_length(short, e), sink_at_length(long, e))]
        ours = ours_text(rule, pairs)
        requires, refuted = [], []
        for e in grid:
            a, b, fall = sink_at_length(short, e), sink_at_length(long, e), length_fall(short, long, e)
            requires += [
                rule.greater("default", a, "default", b),
                rule.greater("default", fall, control, fall),
            ]
            refuted.append([rule.greater("default", b, "default", a)])
        return decided(rule, ours, requires, refuted)

    return judge


def all_of(*judges: Judge) -> Judge:
    """Claim of several parts: one verdict from all their tests (a precondition of any part decides)."""

    def judge(rule: Rule) -> Finding:
        findings = [j(rule) for j in judges]
        ours = "; ".join(dict.fromkeys(part for f in findings for part in f.ours.split("; ")))
        for verdict in (MISSING, NOT_AT_SCALE):
            if early := next((f for f in findings if f.verdict == verdict and not f.requires), None):
                return Finding(ours, verdict, early.rule)
        requires = [t for f in findings for t in f.requires]
        refuted = [g for f in findings for g in f.refuted_by]
        return decided(rule, ours, requires, refuted)

    return judge


def scale_only(scales: tuple[str, ...], inner: Judge) -> Judge:
    def judge(rule: Rule) -> Finding:
        finding = inner(rule)
        if rule.scale not in scales:
            why = f"the claim is about scale {' / '.join(scales)}"
            return Finding(finding.ours + f" (at scale {rule.scale})", NOT_AT_SCALE, why)
        return finding

    return judge


def random_first(rule: Rule) -> Finding:
    """A random x1 replaces the BOS of a BOS scale: there the baseline is the default without its BOS."""
    baseline = "no_bos" if "no_bos" in rule.results else "default"
    sub = Rule(rule.results, rule.scale, baseline) if baseline != "default" else rule
    finding = present(("random_x1",))(sub)
    rule.read.update(sub.read)
    if baseline == "no_bos" and not sub.default_has_sink:
        why = "no sink on a natural first token at this scale (no seed of no_bos has one)"
        return Finding(finding.ours + f"; no_bos {stat_text(rule, 'no_bos')}", NOT_AT_SCALE, why)
    return finding


__all__ = ["SINK_PRESENT", "Finding", "Judge"]
