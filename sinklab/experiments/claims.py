"""The paper's claims, each with its number and a verdict from our runs under one statistical rule.

The rule, written once here and applied to every claim:

* A run's value is the mean of its last `LAST_EVALS` evaluations (log.jsonl), averaged over its seeds; the
  spread shown beside it is the seeds' min-max (and sd).
* A run "has a sink" at Sink_1 >= `SINK_PRESENT` %, "none" at <= `SINK_ABSENT` %.
* Two values differ only beyond max(one head's worth = 100 / (layers x heads), 2 x the pooled seed sd of
  the runs compared); for metrics that are not a share of heads (losses, norm ratios) only the seed term.
* A run without a sink is evidence (for *or* against a claim) only if it trained at least
  `ONSET_FACTOR` x as long, in steps and in tokens, as the default run's sink onset (the first evaluation at
  which the seed-mean Sink_1 of the default reaches `SINK_PRESENT`); otherwise the verdict is
  "not at this scale" ("not yet emerged"). With no sink in the default run at all, every claim that needs
  one is "not at this scale".

Verdicts: reproduced (the runs show the effect), contradicted (they show the opposite beyond noise, with
the rule satisfied), inconclusive (the difference is within noise), not at this scale (a precondition does
not hold here: no sink in the default, a run stopped before the sink could emerge, or a claim about another
scale), untested at CPU scales (the claim is about a natural first token and every sequence of this scale
starts with the same BOS, or this no-BOS CPU scale grew no sink in its default run), missing (a run it needs
has not finished).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sinklab.experiments.lengths import CACHE_FILE as LENGTH_FILE

REPRODUCED = "reproduced"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_AT_SCALE = "not at this scale"
UNTESTED = "untested at CPU scales"
MISSING = "missing"
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_AT_SCALE, UNTESTED, MISSING)

SINK_PRESENT = 5.0  # Sink_1 (%) at or above which a run has a sink
SINK_ABSENT = 1.0  # ... at or below which it has none (the paper's "no sink" runs are 0.0-0.8 %)
LAST_EVALS = 3  # a run's value: the mean of its last this many evaluations
SEED_SPREAD_FACTOR = 2.0  # differences count beyond this many pooled seed sds (or one head's worth)
ONSET_FACTOR = 1.5  # a run without a sink counts once it trained this x the default's sink onset
LOSS_CLOSE = 0.3  # nats: "similar loss" is within this, "hurts the loss" beyond it
PAPER_SCALES = ("60m", "1b")  # where the paper's own training budget holds by construction
DEFAULT_NO_SINK = "no sink in the default run"
SEED_SUFFIX = re.compile(r"^(?P<name>.+)-seed(?P<seed>\d+)$")


def run_name_and_seed(directory_name: str) -> tuple[str, int]:
    """`default` -> (default, 0); `default-seed2` -> (default, 2): seed 0 keeps the plain name."""
    match = SEED_SUFFIX.match(directory_name)
    return (match["name"], int(match["seed"])) if match else (directory_name, 0)


def seed_run_name(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}-seed{seed}"


# --------------------------------------------------------------------------------------------- one seed


@dataclass
class RunResult:
    """One finished training run (one seed): its final metrics.json, its log.jsonl and its size."""

    name: str
    sink_percent: list[float]  # final Sink_k at the headline epsilon, k = 1..T
    val_loss: float | None
    slot_sink: float | None = None  # Sink_1* on a sink slot / sink token / sink logit, if the model has one
    sink_by_layer: list[list[float]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # log.jsonl lines
    path: Path | None = None
    seed: int = 0
    layers: int = 0  # 0: unknown (hand-made results)
    heads: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    by_length: dict[str, Any] | None = None  # Sink_1 over evaluation lengths and ε (lengths.CACHE_FILE)

    def sink(self, k: int = 1) -> float:
        return float(self.sink_percent[k - 1])

    @property
    def steps(self) -> int:
        return int(self.history[-1]["step"]) if self.history else 0

    @property
    def tokens(self) -> int:
        return int(self.history[-1].get("tokens", 0)) if self.history else 0

    def last(self, value: Callable[[RunResult, dict[str, Any] | None], float | None]) -> float | None:
        """Mean of `value` over the last LAST_EVALS evaluations (the final metrics when there is no log)."""
        if not self.history:
            return value(self, None)
        values = [v for line in self.history[-LAST_EVALS:] if (v := value(self, line)) is not None]
        return sum(values) / len(values) if values else value(self, None)

    @classmethod
    def load(cls, run_dir: str | Path) -> RunResult | None:
        """None when the run has not finished (no final metrics.json); unreadable files are an error."""
        run_dir = Path(run_dir)
        metrics_path = run_dir / "metrics.json"
        if not metrics_path.exists():
            return None
        metrics = _read_metrics(metrics_path)
        history = _read_log(run_dir / "log.jsonl")
        config = _read_json(run_dir / "config.json") if (run_dir / "config.json").exists() else {}
        val_loss = metrics.get("val_loss")
        if val_loss is None and history:
            val_loss = history[-1].get("val_loss")
        model = config.get("model", {})
        name, seed = run_name_and_seed(run_dir.name)
        by_length = run_dir / LENGTH_FILE
        measured = _read_json(by_length) if by_length.exists() else None
        return cls(
            name=name,
            sink_percent=list(metrics["sink_percent"]),
            val_loss=val_loss,
            slot_sink=_slot_sink(metrics),
            sink_by_layer=metrics.get("sink_percent_by_layer", []),
            history=history,
            path=run_dir,
            seed=seed,
            layers=int(model.get("n_layer", 0)),
            heads=int(model.get("n_head", 0)),
            metrics=metrics,
            by_length=measured,
        )


class ResultFileError(ValueError):
    """A run's metrics.json, log.jsonl or config.json cannot be read (the report lists it as unreadable)."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResultFileError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise ResultFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_metrics(path: Path) -> dict[str, Any]:
    from sinklab.errors import SinklabError
    from sinklab.measure.analysis import read_metrics

    try:
        return read_metrics(path)
    except SinklabError as err:
        raise ResultFileError(str(err)) from None


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError as err:
            raise ResultFileError(f"{path}, line {number}: not valid JSON ({err})") from None
    return lines


def _slot_sink(metrics: dict[str, Any]) -> float | None:
    """Sink_1* at the headline epsilon, when the model has a sink slot, sink token or sink logit."""
    slot = metrics.get("slot")
    if not slot:
        return None
    return float(slot["sink_percent_by_eps"][f"{float(metrics.get('epsilon', 0.3)):g}"])


# -------------------------------------------------------------------------------------------- metrics
# A metric turns one seed's run into a number: the mean of its last evaluations where the log has it.

Metric = Callable[[RunResult], float | None]


def sink_k(k: int) -> Metric:
    def value(run: RunResult) -> float | None:
        def one(r: RunResult, line: dict[str, Any] | None) -> float | None:
            source = r.sink_percent if line is None else line.get("sink_percent") or []
            return float(source[k - 1]) if len(source) >= k else None

        return run.last(one)

    value.__name__ = f"Sink_{k}"
    return value


SINK_1 = sink_k(1)


def slot_sink(run: RunResult) -> float | None:
    def one(r: RunResult, line: dict[str, Any] | None) -> float | None:
        v = r.slot_sink if line is None else line.get("slot_sink_percent")
        return None if v is None else float(v)

    return run.last(one)


def val_loss(run: RunResult) -> float | None:
    def one(r: RunResult, line: dict[str, Any] | None) -> float | None:
        v = r.val_loss if line is None else line.get("val_loss")
        return None if v is None or not math.isfinite(v) else float(v)

    return run.last(one)


def max_sink(positions: Iterable[int]) -> Metric:
    """The largest Sink_k over `positions` (per seed): "a sink anywhere among these positions"."""
    ks = tuple(positions)

    def value(run: RunResult) -> float | None:
        values = [v for k in ks if (v := sink_k(k)(run)) is not None]
        return max(values) if values else None

    value.__name__ = f"max Sink_{ks[0]}..{ks[-1]}"
    return value


def sink_at_length(length: int, eps: float) -> Metric:
    """Sink_1^eps of the final model on the first `length` tokens of the evaluation set (Fig. 3)."""

    def value(run: RunResult) -> float | None:
        data = run.by_length
        if not data or length not in data.get("lengths", []):
            return None
        series = data.get("sink_1", {}).get(f"{eps:g}")
        return float(series[data["lengths"].index(length)]) if series else None

    value.__name__ = f"Sink_1^{eps:g}(T={length})"
    return value


def massive_activation_ratio(run: RunResult) -> float | None:
    """max over layers of ||h_1|| / mean_{t>1} ||h_t|| (the paper's ratio, with the mean), final metrics."""
    norms = (run.metrics.get("analyses") or {}).get("hidden_norm")
    if not norms:
        return None
    ratios = [row[0] / (sum(row[1:]) / len(row[1:])) for row in norms[1:] if len(row) > 1 and row[0]]
    return max(ratios) if ratios else None


def first_value_norm_ratio(run: RunResult) -> float | None:
    """mean over layers of ||v_1|| / mean_{t>1} ||v_t|| (< 1: the first token's value is small)."""
    norms = (run.metrics.get("analyses") or {}).get("value_norm")
    if not norms:
        return None
    ratios = [row[0] / (sum(row[1:]) / len(row[1:])) for row in norms if len(row) > 1]
    return sum(ratios) / len(ratios) if ratios else None


# ------------------------------------------------------------------------------------ seeds, one rule


@dataclass
class Stat:
    """A run's value over its seeds."""

    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def sd(self) -> float:
        if self.n < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))

    def text(self, digits: int = 2) -> str:
        if self.n == 1:
            return f"{self.mean:.{digits}f} (n=1)"
        return (
            f"{self.mean:.{digits}f} [{min(self.values):.{digits}f}–{max(self.values):.{digits}f}] "
            f"(n={self.n})"
        )


@dataclass
class Run:
    """All finished seeds of one run name."""

    name: str
    seeds: list[RunResult]

    def stat(self, metric: Metric) -> Stat | None:
        values = [v for r in self.seeds if (v := metric(r)) is not None]
        return Stat(values) if values else None

    def sink(self, k: int = 1) -> float:
        stat = self.stat(sink_k(k))
        return stat.mean if stat else 0.0

    @property
    def head_worth(self) -> float:
        """One head that sinks in every sample is worth this many points of Sink_k (0: unknown)."""
        r = self.seeds[0]
        return 100.0 / (r.layers * r.heads) if r.layers and r.heads else 0.0

    @property
    def steps(self) -> int:
        return min(r.steps for r in self.seeds)

    @property
    def tokens(self) -> int:
        return min(r.tokens for r in self.seeds)

    @property
    def val_loss(self) -> float | None:
        stat = self.stat(val_loss)
        return stat.mean if stat else None

    @property
    def slot_sink(self) -> float | None:
        stat = self.stat(slot_sink)
        return stat.mean if stat else None

    def per_seed(self) -> dict[str, Any]:
        return {
            "seeds": [r.seed for r in self.seeds],
            "sink_1": [sink_k(1)(r) for r in self.seeds],
            "sink_2": [sink_k(2)(r) for r in self.seeds],
            "slot_sink": [slot_sink(r) for r in self.seeds],
            "val_loss": [val_loss(r) for r in self.seeds],
            "steps": [r.steps for r in self.seeds],
            "tokens": [r.tokens for r in self.seeds],
        }


Results = dict[str, Run]


def group_results(single: Iterable[RunResult]) -> Results:
    """Seeds of the same run name together, sorted by seed."""
    runs: dict[str, list[RunResult]] = {}
    for r in single:
        runs.setdefault(r.name, []).append(r)
    return {n: Run(n, sorted(rs, key=lambda r: r.seed)) for n, rs in sorted(runs.items())}


def threshold(stats: list[tuple[Run, Stat]], share_of_heads: bool = True) -> tuple[float, str]:
    """The rule's noise threshold for comparing these runs' values, and how it was decided."""
    variances = [s.sd**2 for _, s in stats if s.n >= 2]
    pooled = math.sqrt(sum(variances) / len(variances)) if variances else 0.0
    head = max((run.head_worth for run, _ in stats), default=0.0) if share_of_heads else 0.0
    seed_term = SEED_SPREAD_FACTOR * pooled
    if head >= seed_term:
        why = f"one head = {head:.1f} pts" if share_of_heads else "no seed spread"
        why += "" if variances else ", spread unknown (1 seed)"
    else:
        why = f"2 x seed sd = {seed_term:.2f}"
    return max(head, seed_term), why


def pair_threshold(a: Run, a_metric: Metric, b: Run, b_metric: Metric) -> tuple[float, str] | None:
    """The rule's noise threshold (and why) for comparing two runs' values; None if either is missing."""
    sa, sb = a.stat(a_metric), b.stat(b_metric)
    return None if sa is None or sb is None else threshold([(a, sa), (b, sb)])


def onset(default: Run) -> tuple[int, int] | None:
    """(step, tokens) of the default's first evaluation whose seed-mean Sink_1 reaches SINK_PRESENT."""
    by_step: dict[int, list[tuple[float, int]]] = {}
    for r in default.seeds:
        for line in r.history:
            sinks = line.get("sink_percent") or []
            if sinks:
                by_step.setdefault(int(line["step"]), []).append(
                    (float(sinks[0]), int(line.get("tokens", 0)))
                )
    for step in sorted(by_step):
        rows = by_step[step]
        if len(rows) == len(default.seeds) and sum(v for v, _ in rows) / len(rows) >= SINK_PRESENT:
            return step, max(t for _, t in rows)
    if not by_step and default.sink(1) >= SINK_PRESENT:
        return 0, 0  # hand-made results without a log: the sink was there from the start
    return None


class Rule:
    """The one rule, bound to a set of results (the default run gives the sink onset)."""

    def __init__(self, results: Results, scale: str, baseline: str = "default", bos: bool = False) -> None:
        self.results = results
        self.scale = scale
        self.bos = bos  # every sequence of this scale starts with the same BOS
        self.baseline = results.get(baseline)
        self.onset = onset(self.baseline) if self.baseline else None

    @property
    def default_has_sink(self) -> bool:
        return self.onset is not None and self.baseline is not None and self.baseline.sink(1) >= SINK_PRESENT

    def trained_long_enough(self, run: Run) -> bool:
        """Whether a run without a sink counts as evidence (ONSET_FACTOR x the default's onset)."""
        if self.onset is None:
            return self.scale in PAPER_SCALES
        step, tokens = self.onset
        return run.steps >= ONSET_FACTOR * step and run.tokens >= ONSET_FACTOR * tokens

    def onset_text(self) -> str:
        if self.onset is None:
            return "the default has no sink onset"
        return f"default onset step {self.onset[0]} ({self.onset[1] / 1e6:.1f}M tokens)"

    def state(self, run: Run, metric: Metric) -> str:
        """sink | none | not yet (none, but too short to count) | weak."""
        stat = run.stat(metric)
        value = stat.mean if stat else 0.0
        if value >= SINK_PRESENT:
            return "sink"
        if value <= SINK_ABSENT:
            return "none" if self.trained_long_enough(run) else "not yet"
        return "weak"

    def compare(self, high: Run, high_metric: Metric, low: Run, low_metric: Metric) -> tuple[int, str]:
        """+1: high > low beyond noise; -1: low > high beyond noise; 0: within noise; with the text."""
        noise = pair_threshold(high, high_metric, low, low_metric)
        if noise is None:
            return 0, "value missing"
        limit, why = noise
        diff = high.stat(high_metric).mean - low.stat(low_metric).mean
        text = f"difference {diff:+.2f} vs noise {limit:.2f} ({why})"
        if diff > limit:
            return 1, text
        if diff < -limit:
            return -1, text
        return 0, text


# ---------------------------------------------------------------------------------------------- claims


@dataclass
class Finding:
    ours: str
    verdict: str
    rule: str = ""  # which part of the rule decided the verdict


@dataclass(frozen=True)
class Claim:
    id: str
    suite: str
    text: str
    paper: str  # the paper's numbers, as printed
    runs: tuple[str, ...]  # runs it needs
    judge: Callable[[Rule], Finding]
    natural_first_token: bool = False  # about a first token that is ordinary text (the paper's packing)
    needs_default_sink: bool = True  # judged only when the default run has a sink (all but sink-emerges)
    # For the claim's figure: the paper's value of each run on the figure's metric (Sink_k at `position`,
    # or Sink_1* on the slot for slot runs), drawn beside ours.
    paper_values: tuple[tuple[str, float], ...] = ()
    position: int = 1

    def evaluate(self, results: Results, scale: str, bos: bool = False) -> Finding:
        rule = Rule(results, scale, bos=bos)
        untested = self.untested_because(rule) if self.natural_first_token else None
        absent = [r for r in self.runs if r not in results]
        if not absent:
            finding = self.judge(rule)
            if untested is not None and finding.verdict != MISSING:
                return Finding(finding.ours, UNTESTED, untested)
            return finding
        # Some verdicts need none of the missing runs (a sweep skips the runs that could not count).
        ours = f"runs not trained: {', '.join(absent)}"
        if untested is not None and (bos or rule.baseline is not None):
            return Finding(ours, UNTESTED, untested)
        cpu_default = scale not in PAPER_SCALES and "default" not in absent
        if self.needs_default_sink and cpu_default and not rule.default_has_sink:
            default = _stat_text(rule, "default")
            return Finding(f"default {default}; {ours}", NOT_AT_SCALE, DEFAULT_NO_SINK)
        return Finding(f"runs not finished: {', '.join(absent)}", MISSING, "missing runs")

    @staticmethod
    def untested_because(rule: Rule) -> str | None:
        """Why a claim about a natural first token cannot be tested at this scale, or None if it can."""
        if rule.scale in PAPER_SCALES:
            return None
        if rule.bos:
            return (
                "needs a natural first token; every sequence at this scale starts with the same BOS, which "
                "makes x1 a learned constant"
            )
        if rule.baseline is not None and not rule.default_has_sink:
            return "needs a natural first token; this no-BOS CPU scale grew no sink in its default run"
        return None


def _stat_text(rule: Rule, name: str, metric: Metric | None = None) -> str:
    stat = rule.results[name].stat(metric or SINK_1)
    return stat.text() if stat else "–"


def _v(rule: Rule, name: str, metric: Metric | None = None) -> str:
    return f"{name} {_stat_text(rule, name, metric or SINK_1)}"


def _unrecorded(rule: Rule, names: Iterable[str], metric: Metric, ours: str) -> Finding | None:
    """A metric a run did not record never counts as "no sink" (e.g. the window-normalised Sink_1)."""
    absent = [n for n in names if rule.results[n].stat(metric) is None]
    if absent:
        return Finding(
            ours, MISSING, f"{getattr(metric, '__name__', 'metric')} not recorded by {', '.join(absent)}"
        )
    return None


def _no_default_sink(rule: Rule, ours: str) -> Finding | None:
    if rule.default_has_sink:
        return None
    return Finding(ours, NOT_AT_SCALE, DEFAULT_NO_SINK)


def _stronger(high: str, low: str, metric: Metric | None = None, low_metric: Metric | None = None):
    """Claim: run `high` has a stronger sink than run `low` (both on `metric`)."""
    metric = metric or SINK_1

    def judge(rule: Rule) -> Finding:
        lm = low_metric or metric
        ours = f"{_v(rule, high, metric)}; {_v(rule, low, lm)}"
        if (early := _no_default_sink(rule, ours)) is not None:
            return early
        sign, text = rule.compare(rule.results[high], metric, rule.results[low], lm)
        weaker = rule.results[low] if sign > 0 else rule.results[high]
        if sign != 0 and rule.state(weaker, lm if sign > 0 else metric) == "not yet":
            return Finding(
                ours,
                NOT_AT_SCALE,
                f"not yet emerged: {weaker.name} has no sink but trained < "
                f"{ONSET_FACTOR}x the {rule.onset_text()}",
            )
        verdict = {1: REPRODUCED, -1: CONTRADICTED, 0: INCONCLUSIVE}[sign]
        return Finding(ours, verdict, text)

    return judge


def _same(names: tuple[str, ...], metric: Metric | None = None):
    """Claim: these runs do not differ (each compared with the first).

    "No difference" is evidence only where a difference could have shown: a run without a sink that trained
    too briefly counts for nothing (the onset rule, as in every claim), and where the noise is at least the
    first run's whole value, a run that lost its sink entirely would look "the same", so the verdict is
    inconclusive rather than reproduced."""
    metric = metric or SINK_1

    def judge(rule: Rule) -> Finding:
        ours = "; ".join(_v(rule, n, metric) for n in names)
        if (early := _no_default_sink(rule, ours)) is not None:
            return early
        base = rule.results[names[0]]
        base_stat = base.stat(metric)
        base_value = base_stat.mean if base_stat else 0.0
        texts, differs, not_yet, blind = [], [], [], []
        for name in names[1:]:
            other = rule.results[name]
            sign, text = rule.compare(base, metric, other, metric)
            texts.append(f"{name}: {text}")
            if rule.state(other, metric) == "not yet":
                not_yet.append(name)  # no sink yet, too short to count either way
            elif sign != 0:
                differs.append(name)
            elif (noise := pair_threshold(base, metric, other, metric)) and noise[0] >= base_value:
                blind.append(name)
        if differs:
            return Finding(ours, CONTRADICTED, "; ".join(texts))
        if not_yet:
            return Finding(
                ours,
                NOT_AT_SCALE,
                f"not yet emerged: {', '.join(not_yet)} has no sink but trained < {ONSET_FACTOR}x the "
                f"{rule.onset_text()}",
            )
        if blind:
            return Finding(
                ours,
                INCONCLUSIVE,
                "; ".join(texts) + f"; the noise is at least {names[0]}'s whole value ({base_value:.2f}), so "
                f"losing the sink entirely would not show ({', '.join(blind)})",
            )
        return Finding(ours, REPRODUCED, "; ".join(texts))

    return judge


def _has_sink(names: tuple[str, ...], metric: Metric | None = None, need_default: bool = True):
    """Claim: every run in `names` has a sink (on `metric`)."""
    metric = metric or SINK_1

    def judge(rule: Rule) -> Finding:
        ours = "; ".join(_v(rule, n, metric) for n in names)
        if (early := _unrecorded(rule, names, metric, ours)) is not None:
            return early
        if need_default and (early := _no_default_sink(rule, ours)) is not None:
            return early
        states = {n: rule.state(rule.results[n], metric) for n in names}
        if all(s == "sink" for s in states.values()):
            return Finding(ours, REPRODUCED, f"every run >= {SINK_PRESENT} %")
        if none := [n for n, s in states.items() if s == "none"]:
            return Finding(
                ours,
                CONTRADICTED,
                f"no sink in {', '.join(none)} after >= {ONSET_FACTOR}x the {rule.onset_text()}",
            )
        if not_yet := [n for n, s in states.items() if s == "not yet"]:
            return Finding(ours, NOT_AT_SCALE, f"not yet emerged: {', '.join(not_yet)} ({rule.onset_text()})")
        weak = [n for n, s in states.items() if s == "weak"]
        return Finding(ours, INCONCLUSIVE, f"weak ({SINK_ABSENT}-{SINK_PRESENT} %): {', '.join(weak)}")

    return judge


def _no_sink(names: tuple[str, ...], metric: Metric | None = None, similar_loss: bool = False):
    """Claim: no run in `names` has a sink (and, with `similar_loss`, each at a loss close to the default)."""
    metric = metric or SINK_1

    def judge(rule: Rule) -> Finding:
        parts = []
        for n in names:
            gap = _loss_gap(rule, n)
            parts.append(_v(rule, n, metric) + (f", loss gap {gap:+.2f} nats" if gap is not None else ""))
        ours = "; ".join(parts) + (f"; default {rule.baseline.sink(1):.2f}" if rule.baseline else "")
        if (early := _unrecorded(rule, names, metric, ours) or _no_default_sink(rule, ours)) is not None:
            return early
        states = {n: rule.state(rule.results[n], metric) for n in names}
        if sinks := [n for n, s in states.items() if s == "sink"]:
            return Finding(ours, CONTRADICTED, f"a sink (>= {SINK_PRESENT} %) in {', '.join(sinks)}")
        if not_yet := [n for n, s in states.items() if s == "not yet"]:
            return Finding(ours, NOT_AT_SCALE, f"not yet emerged: {', '.join(not_yet)} ({rule.onset_text()})")
        if weak := [n for n, s in states.items() if s == "weak"]:
            return Finding(ours, INCONCLUSIVE, f"weak ({SINK_ABSENT}-{SINK_PRESENT} %): {', '.join(weak)}")
        if similar_loss:
            far = [n for n in names if (g := _loss_gap(rule, n)) is None or abs(g) > LOSS_CLOSE]
            if far:
                return Finding(
                    ours,
                    CONTRADICTED,
                    f"no sink, but the loss differs by > {LOSS_CLOSE} nats: {', '.join(far)}",
                )
        return Finding(
            ours, REPRODUCED, f"every run <= {SINK_ABSENT} % after >= {ONSET_FACTOR}x the {rule.onset_text()}"
        )

    return judge


def _loss_gap(rule: Rule, name: str) -> float | None:
    run, base = rule.results[name].val_loss, rule.baseline.val_loss if rule.baseline else None
    return None if run is None or base is None else run - base


def _sink_on(name: str, k: int, others: tuple[int, ...]):
    """Claim: in run `name` the sink sits on position k, above every other position in `others`."""

    def judge(rule: Rule) -> Finding:
        run = rule.results[name]
        ours = ", ".join(
            f"Sink_{j} {s.text()}" for j in sorted({k, *others}) if (s := run.stat(sink_k(j))) is not None
        )
        if (early := _no_default_sink(rule, ours)) is not None:
            return early
        state = rule.state(run, max_sink((k, *others)))
        if state == "not yet":
            return Finding(ours, NOT_AT_SCALE, f"not yet emerged ({rule.onset_text()})")
        if state == "none":
            return Finding(ours, CONTRADICTED, f"no sink on any of these positions ({rule.onset_text()})")
        signs = [rule.compare(run, sink_k(k), run, sink_k(j)) for j in others]
        text = "; ".join(f"vs Sink_{j}: {t}" for j, (_, t) in zip(others, signs, strict=True))
        if run.sink(k) >= SINK_PRESENT and all(s > 0 for s, _ in signs):
            return Finding(ours, REPRODUCED, text)
        if any(s < 0 for s, _ in signs):
            return Finding(ours, CONTRADICTED, text)
        return Finding(ours, INCONCLUSIVE, text)

    return judge


def _slot_takes(name: str, leaves_first: bool = False):
    """Claim: run `name`'s sink slot (bias / sink token) takes the sink, and x1 keeps none
    (`leaves_first`: the slot has a sink, whatever x1 keeps)."""

    def judge(rule: Rule) -> Finding:
        run = rule.results[name]
        ours = f"Sink_1* {_stat_text(rule, name, slot_sink)}, Sink_1 {_stat_text(rule, name)}"
        if (early := _unrecorded(rule, (name,), slot_sink, ours) or _no_default_sink(rule, ours)) is not None:
            return early
        slot, first = rule.state(run, slot_sink), rule.state(run, sink_k(1))
        if slot == "sink" and (leaves_first or first in ("none", "not yet")):
            return Finding(
                ours,
                REPRODUCED,
                f"slot >= {SINK_PRESENT} %" + ("" if leaves_first else f", x1 <= {SINK_ABSENT} %"),
            )
        if first == "sink" and not leaves_first:
            return Finding(ours, CONTRADICTED, f"the sink stays on x1 (>= {SINK_PRESENT} %)")
        if slot == "none" and first in ("none", "weak"):
            return Finding(
                ours, CONTRADICTED, f"no sink on the slot after >= {ONSET_FACTOR}x the {rule.onset_text()}"
            )
        if "not yet" in (slot, first):
            return Finding(ours, NOT_AT_SCALE, f"not yet emerged ({rule.onset_text()})")
        return Finding(ours, INCONCLUSIVE, "slot or x1 between the thresholds")

    return judge


def _prefix(name: str, p: int):
    """Claim: with a bidirectional prefix of p tokens the sink sits inside the prefix, above the tokens
    after it."""
    inside, after = max_sink(range(1, p + 1)), max_sink(range(p + 1, 2 * p + 1))

    def judge(rule: Rule) -> Finding:
        run = rule.results[name]
        ours = f"max Sink_1..{p} {_stat_text(rule, name, inside)}; max Sink_{p + 1}..{2 * p} " + _stat_text(
            rule, name, after
        )
        if (early := _no_default_sink(rule, ours)) is not None:
            return early
        state = rule.state(run, max_sink(range(1, 2 * p + 1)))
        if state == "not yet":
            return Finding(ours, NOT_AT_SCALE, f"not yet emerged ({rule.onset_text()})")
        if state == "none":
            return Finding(ours, CONTRADICTED, f"no sink in or after the prefix ({rule.onset_text()})")
        sign, text = rule.compare(run, inside, run, after)
        return Finding(ours, {1: REPRODUCED, -1: CONTRADICTED, 0: INCONCLUSIVE}[sign], text)

    return judge


def _sink_emerges(rule: Rule) -> Finding:
    ours = _v(rule, "default")
    if rule.default_has_sink:
        return Finding(ours + f" ({rule.onset_text()})", REPRODUCED, f"seed mean >= {SINK_PRESENT} %")
    if rule.scale in PAPER_SCALES:
        return Finding(ours, CONTRADICTED, f"no sink at the paper's own scale ({rule.scale})")
    return Finding(ours, NOT_AT_SCALE, "no sink within this scale's training budget")


def _too_little_data(run: str):
    def judge(rule: Rule) -> Finding:
        finding = _no_sink((run,))(rule)
        if finding.verdict == CONTRADICTED and rule.scale not in PAPER_SCALES:
            # How little is "too little" is an absolute token count (50M-100M at 60M parameters).
            return Finding(
                finding.ours,
                NOT_AT_SCALE,
                "this fraction of the data still gives a sink at this "
                "scale; the paper's threshold is an absolute amount (50M-100M tokens)",
            )
        return finding

    return judge


def _loss_hurt(name: str):
    """Claim: `name` has no sink and a validation loss worse than the default's by more than LOSS_CLOSE."""

    def judge(rule: Rule) -> Finding:
        finding = _no_sink((name,))(rule)
        if finding.verdict != REPRODUCED:
            return finding
        gap = _loss_gap(rule, name)
        if gap is None or gap <= LOSS_CLOSE:
            return Finding(
                finding.ours, CONTRADICTED, f"no sink, but the loss is not worse by > {LOSS_CLOSE}"
            )
        return Finding(finding.ours, REPRODUCED, finding.rule + f"; loss worse by {gap:.2f} > {LOSS_CLOSE}")

    return judge


def _lower_ratio(high: str, low: str, metric: Metric, label: str):
    """Claim on a ratio that is not a share of heads: `high` > `low` beyond 2 x the seeds' sd."""

    def judge(rule: Rule) -> Finding:
        a, b = rule.results[high].stat(metric), rule.results[low].stat(metric)
        ours = f"{label}: {high} {a.text() if a else '–'}; {low} {b.text() if b else '–'}"
        if a is None or b is None:
            return Finding(ours, MISSING, f"{label} not recorded")
        if (early := _no_default_sink(rule, ours)) is not None:
            return early
        limit, why = threshold([(rule.results[high], a), (rule.results[low], b)], share_of_heads=False)
        if a.n < 2 or b.n < 2:
            return Finding(ours, INCONCLUSIVE, "needs >= 2 seeds for a spread")
        diff = a.mean - b.mean
        text = f"difference {diff:+.2f} vs noise {limit:.2f} ({why})"
        return Finding(
            ours, REPRODUCED if diff > limit else CONTRADICTED if diff < -limit else INCONCLUSIVE, text
        )

    return judge


def _below_one(name: str, metric: Metric, label: str):
    """Claim: `metric` of run `name` is below 1 beyond 2 x its seed sd."""

    def judge(rule: Rule) -> Finding:
        stat = rule.results[name].stat(metric)
        ours = f"{label}: {name} {stat.text() if stat else '–'}"
        if stat is None:
            return Finding(ours, MISSING, f"{label} not recorded")
        if (early := _no_default_sink(rule, ours)) is not None:
            return early
        if stat.n < 2:
            return Finding(ours, INCONCLUSIVE, "needs >= 2 seeds for a spread")
        limit = SEED_SPREAD_FACTOR * stat.sd
        text = f"1 - mean = {1 - stat.mean:+.2f} vs noise {limit:.2f} (2 x seed sd)"
        verdict = (
            REPRODUCED if stat.mean < 1 - limit else CONTRADICTED if stat.mean > 1 + limit else INCONCLUSIVE
        )
        return Finding(ours, verdict, text)

    return judge


def _scale_only(scales: tuple[str, ...], judge: Callable[[Rule], Finding]) -> Callable[[Rule], Finding]:
    def wrapped(rule: Rule) -> Finding:
        finding = judge(rule)
        if rule.scale not in scales:
            return Finding(
                finding.ours + f" (at scale {rule.scale})",
                NOT_AT_SCALE,
                f"the claim is about scale {' / '.join(scales)}",
            )
        return finding

    return wrapped


def _all_of(*judges: Callable[[Rule], Finding]) -> Callable[[Rule], Finding]:
    def judge(rule: Rule) -> Finding:
        findings = [j(rule) for j in judges]
        ours = "; ".join(dict.fromkeys(part for f in findings for part in f.ours.split("; ")))  # each once
        rules = "; ".join(f.rule for f in findings)
        for verdict in (CONTRADICTED, MISSING, NOT_AT_SCALE, INCONCLUSIVE):
            if any(f.verdict == verdict for f in findings):
                return Finding(ours, verdict, rules)
        return Finding(ours, REPRODUCED, rules)

    return judge


def _falls_with_length(rule: Rule) -> Finding:
    """Claim (Fig. 3): Sink_1 falls as the evaluation length T grows, at every ε; judged between the shortest
    and the longest T measured, by the one rule. How much of it each ε keeps is shown, not judged."""
    run = rule.results["default"]
    if (early := _no_default_sink(rule, _v(rule, "default"))) is not None:
        return early
    measured = [r.by_length for r in run.seeds if r.by_length and r.by_length.get("lengths")]
    if len(measured) < len(run.seeds):
        return Finding("not measured (needs each default seed's final model)", MISSING, "not measured")
    lengths = sorted(set.intersection(*(set(m["lengths"]) for m in measured)))
    eps_grid = [e for e in measured[0]["eps"] if all(f"{e:g}" in m["sink_1"] for m in measured)]
    if len(lengths) < 2 or not eps_grid:
        return Finding("fewer than two lengths measured", MISSING, "not measured")
    short, long = lengths[0], lengths[-1]
    parts, signs, texts = [], [], []
    for e in eps_grid:
        lo, hi = sink_at_length(short, e), sink_at_length(long, e)
        a, b = run.stat(lo), run.stat(hi)
        kept = f", keeps {b.mean / a.mean:.0%}" if a and b and a.mean > 0 else ""
        parts.append(f"ε {e:g}: {a.text(1) if a else '–'} -> {b.text(1) if b else '–'}{kept}")
        sign, text = rule.compare(run, lo, run, hi)
        signs.append(sign)
        texts.append(f"ε {e:g}: {text}")
    ours = f"Sink_1 at T = {short} -> {long}: " + "; ".join(parts)
    if any(s < 0 for s in signs):
        return Finding(ours, CONTRADICTED, "rises with T beyond noise at some ε: " + "; ".join(texts))
    if all(s > 0 for s in signs):
        return Finding(ours, REPRODUCED, "falls beyond noise at every ε: " + "; ".join(texts))
    return Finding(ours, INCONCLUSIVE, "within noise at some ε: " + "; ".join(texts))


def _random_first(rule: Rule) -> Finding:
    """A random x1 replaces the BOS of a BOS scale: there the baseline is the default without its BOS."""
    baseline = "no_bos" if "no_bos" in rule.results else "default"
    sub = Rule(rule.results, rule.scale, baseline) if baseline != "default" else rule
    finding = _has_sink(("random_x1",))(sub)
    if baseline == "no_bos" and not sub.default_has_sink:
        return Finding(
            finding.ours + f"; no_bos {rule.results['no_bos'].sink(1):.2f}",
            NOT_AT_SCALE,
            "no sink on a natural first token at this scale (no_bos has none)",
        )
    return finding


POSITION_RUNS = tuple(f"pos_{p}" for p in ("nope", "sinusoidal", "learned", "relative", "alibi"))
MLP_RUNS = tuple(f"mlp_{m}" for m in ("relu", "gelu", "silu", "reglu", "geglu"))
SIGMOID_ROBUSTNESS = ("sigmoid_nonorm_lr_x2", "sigmoid_nonorm_lr_x0.25", "sigmoid_nonorm_wd_0")


def wd_run(gamma: float, default_wd: float) -> str:
    """The run that trains weight decay `gamma`: the default itself where gamma is the scale's default."""
    return "default" if math.isclose(gamma, default_wd) else f"wd_{gamma:g}"


def window_run(window: int) -> str:
    return f"window_{window}"


def build_claims(windows: tuple[int, int] = (8, 32), default_wd: float = 0.5) -> tuple[Claim, ...]:
    """Every claim the suites can judge; run names that depend on the scale (windows, weight decays) are
    functions of it."""
    small_w, large_w = windows
    wd0, wd_mod, wd_ext = wd_run(0.0, default_wd), wd_run(0.5, default_wd), wd_run(5.0, default_wd)
    claims = (
        Claim(
            "sink-emerges",
            "optimization",
            "A softmax LM develops a sink on the first token during pre-training",
            "Sink_1 18.18 % (60M, 20k steps)",
            ("default",),
            _sink_emerges,
            needs_default_sink=False,
        ),
        Claim(
            "eps-length",
            "optimization",
            "Sink_1 falls as the evaluation length T grows, at every ε (and faster for larger ε)",
            "Fig. 3 (GPT2-XL, LLaMA2-7B, LLaMA3-8B; ε 0.2-0.5; values in the figure only)",
            ("default",),
            _falls_with_length,
        ),
        Claim(
            "lr-smaller-weaker",
            "optimization",
            "A smaller learning rate gives a weaker sink",
            "lr 8e-4: 32.23, 4e-4: 18.18, 2e-4: 11.21, 1e-4: 2.90 (20k steps)",
            ("default", "lr_x0.25"),
            _stronger("default", "lr_x0.25"),
        ),
        Claim(
            "lr-larger-stronger",
            "optimization",
            "A larger learning rate gives a stronger sink",
            "lr 8e-4: 32.23 vs 4e-4: 18.18",
            ("default", "lr_x2"),
            _stronger("lr_x2", "default"),
        ),
        Claim(
            "lr-steps-matched",
            "optimization",
            "A smaller learning rate gives a weaker sink even with lr x steps held fixed",
            "4e-4 x 20k: 18.18 vs 2e-4 x 40k: 16.81 (Table 9)",
            ("default", "lr_x0.5_steps_x2"),
            _stronger("default", "lr_x0.5_steps_x2"),
        ),
        Claim(
            "batch-no-effect",
            "optimization",
            "Batch size barely changes the sink",
            "0.25M 16.45, 0.5M 17.19, 1M 18.18, 2M 16.19",
            ("default", "batch_x0.5", "batch_x2"),
            _same(("default", "batch_x0.5", "batch_x2")),
        ),
        Claim(
            "data-amount",
            "data",
            "With too little training data the sink does not emerge",
            "50M-100M tokens: Sink_1 < 1 % (Fig. 28)",
            ("default", "data_1pct"),
            _too_little_data("data_1pct"),
        ),
        Claim(
            "data-less-weaker",
            "data",
            "Less training data gives a weaker sink",
            "5B > 2.5B > 500M tokens (Fig. 5 right, figure only)",
            ("default", "data_10pct"),
            _stronger("default", "data_10pct"),
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
            _has_sink(("random_x2",)),
        ),
        Claim(
            "random-x1x2",
            "data",
            "With x1 and x2 random the sink moves to x2",
            "Sink_2 14.08, Sink_1 1.98",
            ("default", "random_x1x2"),
            _sink_on("random_x1x2", 2, (1, 3, 4)),
        ),
        Claim(
            "random-more",
            "data",
            "More random positions remove the sink",
            "'tends to remove the sink' (no numbers)",
            ("default", "random_x1to4"),
            _stronger("default", "random_x1to4", sink_k(1), max_sink(range(1, 9))),
        ),
        *(
            Claim(
                f"fixed-pos{p}",
                "data",
                f"A fixed token at position {p} takes the sink",
                f"Sink_{p} {v}",
                ("default", f"fixed_pos{p}"),
                _sink_on(f"fixed_pos{p}", p, tuple(j for j in (1, 2, 3, 4) if j != p)),
            )
            for p, v in ((1, 74.11), (2, 69.03), (3, 69.64))
        ),
        Claim(
            "wd-zero-sink",
            "loss",
            "Without weight decay the sink still forms",
            "γ 0: Sink_1 15.20",
            ("default", wd0),
            _has_sink((wd0,)),
        ),
        Claim(
            "wd-moderate",
            "loss",
            "Moderate weight decay (0.5) gives a stronger sink than none",
            "γ 0: 15.20, 0.1: 18.18, 0.5: 41.08",
            ("default", wd0, wd_mod),
            _stronger(wd_mod, wd0),
        ),
        Claim(
            "wd-extreme",
            "loss",
            "Extreme weight decay (5.0) removes the sink and hurts the loss",
            "γ 5.0: Sink_1 0.01, loss 5.24 vs 3.73",
            ("default", wd_ext),
            _loss_hurt(wd_ext),
        ),
        Claim(
            "prefix-lm",
            "loss",
            "With a prefix LM the sink sits on a prefix token",
            "p = 5: sink inside the prefix (Fig. 5 middle)",
            ("default", "prefix_5"),
            _prefix("prefix_5", 5),
        ),
        Claim(
            "window-small",
            "loss",
            f"A small attention window (w = {small_w}) prevents the sink",
            "w < 256: weak or no sink (Fig. 6)",
            ("default", window_run(small_w)),
            _no_sink((window_run(small_w),), WINDOW_SINK),
        ),
        Claim(
            "window-large",
            "loss",
            f"A large attention window (w = {large_w}) keeps a sink on the absolute first token",
            "w >= 256: sink on x1 (Fig. 6)",
            ("default", window_run(large_w)),
            _has_sink((window_run(large_w),), WINDOW_SINK),
        ),
        Claim(
            "positions",
            "architecture",
            "Every positional embedding develops a sink",
            "NoPE 20.35, abs 32.73, learned 33.13, relative 35.53, ALiBi 20.78, RoPE 18.18",
            ("default", *POSITION_RUNS),
            _has_sink(POSITION_RUNS),
        ),
        Claim(
            "ffn",
            "architecture",
            "Every FFN type develops a sink",
            "ReLU 16.90, GeLU 14.76, Swish 17.89, ReGLU 13.88, GeGLU 17.86, SwiGLU 18.18",
            ("default", *MLP_RUNS),
            _has_sink(MLP_RUNS),
        ),
        Claim(
            "post-ln",
            "architecture",
            "Post-LN models develop a sink too",
            "Sink_1 13.54",
            ("default", "post_ln"),
            _has_sink(("post_ln",)),
        ),
        Claim(
            "heads",
            "architecture",
            "Every number of heads develops a sink",
            "H 1: 19.50, 2: 12.95, 4: 10.68, 8: 18.18, addition 21.76",
            ("default", "heads_1", "heads_2", "heads_addition"),
            _has_sink(("heads_1", "heads_2", "heads_addition")),
        ),
        Claim(
            "k-bias",
            "architecture",
            "A learnable key bias (even with zero value) takes the sink off x1",
            "K biases: Sink_1* 73.34, Sink_1 0.00",
            ("default", "kv_bias_k"),
            _slot_takes("kv_bias_k"),
        ),
        Claim(
            "kv-bias",
            "architecture",
            "Learnable key and value biases take the sink off x1",
            "KV biases: Sink_1* 72.76, Sink_1 0.04",
            ("default", "kv_bias_kv"),
            _slot_takes("kv_bias_kv"),
        ),
        Claim(
            "k-bias-shared",
            "architecture",
            "A key bias shared by all heads still takes the sink off x1",
            "K shared: Sink_1* 68.31, Sink_1 0.23",
            ("default", "kv_bias_k_shared"),
            _slot_takes("kv_bias_k_shared"),
        ),
        Claim(
            "kv-bias-shared",
            "architecture",
            "Head-shared KV biases take a sink on their slot (some stays on x1)",
            "KV shared: Sink_1* 56.61, Sink_1 12.44",
            ("default", "kv_bias_kv_shared"),
            _slot_takes("kv_bias_kv_shared", leaves_first=True),
        ),
        Claim(
            "k-bias-fixed-value",
            "architecture",
            "A large fixed value v* = 20 e1 on the key bias pushes the sink back onto x1",
            "v* 0: Sink_1 0.00; 20v': 25.88 (Table 5)",
            ("default", "kv_bias_k", "kv_bias_k_v20"),
            # A sink on x1 with v*, beyond the none of the plain key bias: "stronger than kv_bias_k" alone
            # could never be contradicted, since kv_bias_k's Sink_1 is about 0 by the k-bias claim.
            _all_of(_has_sink(("kv_bias_k_v20",)), _stronger("kv_bias_k_v20", "kv_bias_k")),
        ),
        Claim(
            "k-bias-few-dims",
            "architecture",
            "A key bias with a single learnable dimension still takes a sink on its slot",
            "d_a 1: Sink_1* 32.18, Sink_1 4.74 (Table 13)",
            ("default", "kv_bias_k_da1"),
            _slot_takes("kv_bias_k_da1", leaves_first=True),
        ),
        Claim(
            "sink-token",
            "architecture",
            "A learnable sink token takes the sink off x1",
            "sink token: Sink_1* 74.12, Sink_1 0.00",
            ("default", "sink_token"),
            _slot_takes("sink_token"),
        ),
        Claim(
            "v-bias",
            "architecture",
            "A value bias alone does not remove the sink",
            "V biases: Sink_1 17.53",
            ("default", "kv_bias_v"),
            _has_sink(("kv_bias_v",)),
        ),
        Claim(
            "sigmoid-nonorm",
            "architecture",
            "Sigmoid attention without normalisation has no sink at similar loss",
            "Sink_1* 0.44, loss 3.70 vs 3.73",
            ("default", "sigmoid_nonorm"),
            _no_sink(("sigmoid_nonorm",), similar_loss=True),
        ),
        Claim(
            "sigmoid-robust",
            "architecture",
            "Sigmoid attention without normalisation stays sink-free across learning rates and weight decay",
            "Sink_1* 0.18-0.81 (Table 14 right)",
            ("default", *SIGMOID_ROBUSTNESS),
            _no_sink(SIGMOID_ROBUSTNESS),
        ),
        Claim(
            "sigmoid-norm",
            "architecture",
            "Normalised sigmoid attention keeps the sink",
            "Sink_1 30.24",
            ("default", "sigmoid_norm"),
            _has_sink(("sigmoid_norm",)),
        ),
        Claim(
            "elu-nonorm",
            "architecture",
            "elu+1 attention without normalisation has no sink",
            "Sink_1* 0.80, loss 3.69",
            ("default", "elu_nonorm"),
            _no_sink(("elu_nonorm",)),
        ),
        Claim(
            "elu-kernel-norm",
            "architecture",
            "Normalised elu-kernel (linear) attention has a sink",
            "Sink_1* 53.65, loss 4.19",
            ("default", "linear_elu_norm"),
            _has_sink(("linear_elu_norm",)),
        ),
        Claim(
            "linear-nonorm",
            "architecture",
            "Identity-kernel attention without normalisation has no sink",
            "Sink_1* 0.00, loss 3.99",
            ("default", "linear_identity_nonorm"),
            _no_sink(("linear_identity_nonorm",)),
        ),
        Claim(
            "mlp-kernel",
            "architecture",
            "MLP-kernel attention has no sink, normalised or not",
            "norm 0.19*, no norm 0.74*",
            ("default", "linear_mlp_norm", "linear_mlp_nonorm"),
            _no_sink(("linear_mlp_norm", "linear_mlp_nonorm")),
        ),
        Claim(
            "massive-activations",
            "architecture",
            "Models without a sink have no massive activation on the first token",
            "sigmoid / K-bias models: no massive activations (Figs. 7, 8)",
            ("default", "sigmoid_nonorm", "kv_bias_k"),
            _all_of(
                _lower_ratio("default", "sigmoid_nonorm", massive_activation_ratio, "‖h₁‖ / mean"),
                _lower_ratio("default", "kv_bias_k", massive_activation_ratio, "‖h₁‖ / mean"),
            ),
        ),
        Claim(
            "sink-value-small",
            "architecture",
            "The sink token has a small value norm",
            "‖v₁‖ smaller than other tokens' (Sec. 3, Figs. 2, 11-14)",
            ("default",),
            _below_one("default", first_value_norm_ratio, "‖v₁‖ / mean ‖v_t‖"),
        ),
        Claim(
            "scale-1b",
            "scale-up",
            "Sigmoid without normalisation has no sink at 1B either",
            "1B: softmax 45.11 % / loss 3.07; sigmoid 2.46 %* / 3.10",
            ("default", "sigmoid_nonorm"),
            _scale_only(("1b",), _no_sink(("sigmoid_nonorm",), similar_loss=True)),
        ),
    )
    return tuple(
        dataclasses.replace(
            c,
            natural_first_token=c.id in NATURAL_FIRST_TOKEN,
            paper_values=_paper_values(c.id, wd0, wd_mod, wd_ext),
            position=FIGURE_POSITION.get(c.id, 1),
        )
        for c in claims
    )


# The paper's numbers per run, for the claims' figures (Sink_1 in %, 60M unless said; * = on the slot).
PAPER_DEFAULT = 18.18
FIGURE_POSITION = {"random-x1x2": 2, "fixed-pos2": 2, "fixed-pos3": 3}


def _paper_values(claim_id: str, wd0: str, wd_mod: str, wd_ext: str) -> tuple[tuple[str, float], ...]:
    table: dict[str, dict[str, float]] = {
        "sink-emerges": {},
        "eps-length": {},
        "lr-smaller-weaker": {"lr_x0.25": 2.90},
        "lr-larger-stronger": {"lr_x2": 32.23},
        "lr-steps-matched": {"lr_x0.5_steps_x2": 16.81},
        "batch-no-effect": {"batch_x0.5": 17.19, "batch_x2": 16.19},
        "random-x1": {"random_x1": 27.03},
        "random-x2": {"random_x2": 20.99},
        "random-x1x2": {"random_x1x2": 14.08},
        "fixed-pos1": {"fixed_pos1": 74.11},
        "fixed-pos2": {"fixed_pos2": 69.03},
        "fixed-pos3": {"fixed_pos3": 69.64},
        "wd-zero-sink": {wd0: 15.20},
        "wd-moderate": {wd0: 15.20, wd_mod: 41.08},
        "wd-extreme": {wd_ext: 0.01},
        "positions": {
            "pos_nope": 20.35,
            "pos_sinusoidal": 32.73,
            "pos_learned": 33.13,
            "pos_relative": 35.53,
            "pos_alibi": 20.78,
        },
        "ffn": {
            "mlp_relu": 16.90,
            "mlp_gelu": 14.76,
            "mlp_silu": 17.89,
            "mlp_reglu": 13.88,
            "mlp_geglu": 17.86,
        },
        "post-ln": {"post_ln": 13.54},
        "heads": {"heads_1": 19.50, "heads_2": 12.95, "heads_addition": 21.76},
        "k-bias": {"kv_bias_k": 73.34},
        "kv-bias": {"kv_bias_kv": 72.76},
        "k-bias-shared": {"kv_bias_k_shared": 68.31},
        "kv-bias-shared": {"kv_bias_kv_shared": 56.61},
        "k-bias-fixed-value": {"kv_bias_k": 73.34, "kv_bias_k_v20": 1.51},
        "k-bias-few-dims": {"kv_bias_k_da1": 32.18},
        "sink-token": {"sink_token": 74.12},
        "v-bias": {"kv_bias_v": 17.53},
        "sigmoid-nonorm": {"sigmoid_nonorm": 0.44},
        "sigmoid-norm": {"sigmoid_norm": 30.24},
        "elu-nonorm": {"elu_nonorm": 0.80},
        "elu-kernel-norm": {"linear_elu_norm": 53.65},
        "linear-nonorm": {"linear_identity_nonorm": 0.00},
        "mlp-kernel": {"linear_mlp_norm": 0.19, "linear_mlp_nonorm": 0.74},
    }
    if claim_id not in table:
        return ()
    return (("default", PAPER_DEFAULT), *table[claim_id].items())


# Claims about a first token that is ordinary text: untestable where every sequence starts with a BOS.
NATURAL_FIRST_TOKEN = frozenset(
    (
        "data-amount",
        "data-less-weaker",
        "random-x1",
        "random-x2",
        "random-x1x2",
        "random-more",
        "prefix-lm",
        "window-small",
        "window-large",
        "positions",
        "ffn",
        "post-ln",
        "sink-token",
    )
)


def _window_sink(run: RunResult) -> float | None:
    """Sink_1 with α_1 normalised by the queries that can see x1 (window-normalised, logged by windowed
    runs); the plain α_1 of a window w at length T is at most w / T by construction."""

    def one(r: RunResult, line: dict[str, Any] | None) -> float | None:
        source = (r.metrics if line is None else line).get("sink_percent_window")
        return float(source[0]) if source else None

    return run.last(one)


WINDOW_SINK: Metric = _window_sink

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
