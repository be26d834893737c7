"""One finished run per seed (RunResult), the seeds of one run name together (Run), and the named
quantities a claim judges (Quantity: Sink_k at a position, Sink_1* on a slot, a norm ratio, the loss)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sinklab.experiments.lengths import CACHE_FILE as LENGTH_FILE
from sinklab.experiments.suites import run_name_and_seed

LAST_EVALS = 3  # a run's value: the mean of its last this many evaluations


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


# ------------------------------------------------------------------------------------------ quantities

Line = dict[str, Any] | None  # one log.jsonl line; None: the final metrics.json


@dataclass(frozen=True)
class Quantity:
    """A named number per seed: the mean of its last LAST_EVALS evaluations where the log has it (`read`
    gets a log line, or None for the final metrics), else a value of the final model only (`final`)."""

    key: str  # its name in claims.json
    label: str  # axis and table label
    unit: str  # "%", "nats" or "ratio"
    read: Callable[[RunResult, Line], float | None] | None = None
    final: Callable[[RunResult], float | None] | None = None
    heads: bool = True  # a share of heads: one head's worth is the smallest effect worth calling

    def __call__(self, run: RunResult) -> float | None:
        if self.final is not None:
            return self.final(run)
        assert self.read is not None
        return run.last(self.read)

    @property
    def __name__(self) -> str:
        return self.label

    def axis(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit != "ratio" else self.label

    def during_training(self, run: RunResult) -> list[tuple[float, float]]:
        """(step, value) over the run's log; empty for a quantity of the final model only."""
        if self.read is None:
            return []
        return [(float(h["step"]), v) for h in run.history if (v := self.read(run, h)) is not None]


def sink_k(k: int) -> Quantity:
    def read(r: RunResult, line: Line) -> float | None:
        source = r.sink_percent if line is None else line.get("sink_percent") or []
        return float(source[k - 1]) if len(source) >= k else None

    return Quantity(f"sink_{k}", f"Sink_{k}", "%", read)


SINK_1 = sink_k(1)


def _slot_read(r: RunResult, line: Line) -> float | None:
    v = r.slot_sink if line is None else line.get("slot_sink_percent")
    return None if v is None else float(v)


slot_sink = Quantity("slot_sink", "Sink_1* (slot)", "%", _slot_read)


def _loss_read(r: RunResult, line: Line) -> float | None:
    v = r.val_loss if line is None else line.get("val_loss")
    return None if v is None or not math.isfinite(v) else float(v)


val_loss = Quantity("val_loss", "validation loss", "nats", _loss_read, heads=False)


def max_sink(positions: Iterable[int]) -> Quantity:
    """The largest Sink_k over `positions` (per seed): "a sink anywhere among these positions"."""
    ks = tuple(positions)

    def read(r: RunResult, line: Line) -> float | None:
        values = [v for k in ks if (v := sink_k(k).read(r, line)) is not None]  # type: ignore[misc]
        return max(values) if values else None

    return Quantity(f"max_sink_{ks[0]}_{ks[-1]}", f"max Sink_{ks[0]}..{ks[-1]}", "%", read)


def sink_at_length(length: int, eps: float) -> Quantity:
    """Sink_1^eps of the final model on the first `length` tokens of the evaluation set (Fig. 3)."""

    def final(run: RunResult) -> float | None:
        data = run.by_length
        if not data or length not in data.get("lengths", []):
            return None
        series = data.get("sink_1", {}).get(f"{eps:g}")
        return float(series[data["lengths"].index(length)]) if series else None

    return Quantity(f"sink_1_eps{eps:g}_T{length}", f"Sink_1^{eps:g}(T={length})", "%", final=final)


def _norm_ratios(run: RunResult, analysis: str, skip_first_layer: bool) -> list[float]:
    norms = (run.metrics.get("analyses") or {}).get(analysis) or []
    rows = norms[1:] if skip_first_layer else norms
    return [row[0] / (sum(row[1:]) / len(row[1:])) for row in rows if len(row) > 1 and row[0]]


def _massive(run: RunResult) -> float | None:
    ratios = _norm_ratios(run, "hidden_norm", skip_first_layer=True)
    return max(ratios) if ratios else None


def _value_norm(run: RunResult) -> float | None:
    ratios = _norm_ratios(run, "value_norm", skip_first_layer=False)
    return sum(ratios) / len(ratios) if ratios else None


# max over layers of ||h_1|| / mean_{t>1} ||h_t|| (the paper's massive activation, final model)
massive_activation_ratio = Quantity("h1_ratio", "‖h₁‖ / mean ‖h_t‖", "ratio", final=_massive, heads=False)
# mean over layers of ||v_1|| / mean_{t>1} ||v_t|| (< 1: the first token's value is small)
first_value_norm_ratio = Quantity("v1_ratio", "‖v₁‖ / mean ‖v_t‖", "ratio", final=_value_norm, heads=False)


def _window_read(r: RunResult, line: Line) -> float | None:
    """Sink_1 with α_1 normalised by the queries that can see x1 (logged by windowed runs); the plain α_1
    of a window w at length T is at most w / T by construction."""
    source = (r.metrics if line is None else line).get("sink_percent_window")
    return float(source[0]) if source else None


WINDOW_SINK = Quantity("sink_1_window", "Sink_1 (window-normalised)", "%", _window_read)


# ---------------------------------------------------------------------------------------- seeds together


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

    def stat(self, metric: Callable[[RunResult], float | None]) -> Stat | None:
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

    def per_seed(self, quantities: Iterable[Quantity] = ()) -> dict[str, Any]:
        """Every seed's value of the standard quantities and of `quantities` (for claims.json)."""
        out: dict[str, Any] = {
            "seeds": [r.seed for r in self.seeds],
            "steps": [r.steps for r in self.seeds],
            "tokens": [r.tokens for r in self.seeds],
        }
        for q in (SINK_1, sink_k(2), slot_sink, val_loss, *quantities):
            out[q.key] = [q(r) for r in self.seeds]
        return out


Results = dict[str, Run]


def group_results(single: Iterable[RunResult]) -> Results:
    """Seeds of the same run name together, sorted by seed."""
    runs: dict[str, list[RunResult]] = {}
    for r in single:
        runs.setdefault(r.name, []).append(r)
    return {n: Run(n, sorted(rs, key=lambda r: r.seed)) for n, rs in sorted(runs.items())}
