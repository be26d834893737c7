"""Python API of `sinklab ablate`: does the model need its sink?

    import sinklab
    result = sinklab.ablate_model("path/or/hub-id", "text:docs.txt", length=64, samples=100)
    for row in result.rows:
        print(row.label, row.delta.mean, row.delta.low, row.delta.high, row.sink_percent["0.3"][0])

Every ablation runs on the same tokens as the unablated model, batch by batch (one batch's activations at a
time): the loss of each sample is paired with its unablated loss, so the interval on the change is over
samples. The opening (model, runner, ids, notes) is the one `sinklab measure` uses
(sinklab.measure.opening), the loop is `sinklab.observe.observe`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sinklab.ablate.ablations import (
    ABLATIONS,
    AblationContext,
    Intervention,
    ablation_names,
    describe,
    window_size,
)
from sinklab.ablate.config import ATTENTION_ABLATIONS, HEADS_SINK, SWAP_RANDOM, AblationOptions
from sinklab.ablate.outputs import write_outputs
from sinklab.ablate.stats import Interval, LossStats, SinkCounts, token_losses
from sinklab.errors import SinklabError
from sinklab.measure.analysis import jsonable
from sinklab.measure.caller import check_keywords, preserved, python_names, token_ids
from sinklab.measure.checks import MeasureError, check_count, into_out, is_int
from sinklab.measure.config import MeasureConfig, make_config
from sinklab.measure.inputs import check_spec, source_label
from sinklab.measure.massive import Massive, MassiveObserver, MassiveTable, find_massive
from sinklab.measure.opening import Opened, open_measurement
from sinklab.model.edits import AttentionEdit
from sinklab.observe import BACKEND_SINKLAB, ModelRunner, Observers, observe

SCHEMA = 1
BASELINE = "none"
# Sink_k is reported for k = 1..4, and up to 4 past the largest --positions: a masked sink that moves to
# the next token is seen (`sink_top`).
SINK_POSITIONS = 4
# The StreamingLLM reading (docs/ablate.md): the window "breaks" the model when its loss beyond the window
# rises by more than BREAK_NATS (1 % perplexity) with an interval above zero; kept sinks "restore" it when
# they win back at least RESTORE_SHARE of that rise. At CPU scale the rise is hundredths of a nat (the
# demo model: +0.067), not StreamingLLM's exploding perplexity, so the bar is low and the numbers are shown.
BREAK_NATS = 0.01
RESTORE_SHARE = 0.75


def sink_top(sink_percent: dict[str, list[float]]) -> dict[str, Any] | None:
    """The largest Sink_k (k from 1) at the headline (first) eps: where the sink went after an ablation."""
    if not sink_percent:
        return None
    eps, values = next(iter(sink_percent.items()))
    k = max(range(len(values)), key=lambda i: (values[i], -i))  # the first of equal values
    return {"k": k + 1, "percent": float(values[k]), "eps": float(eps)}


@dataclass
class AblationRow:
    """One row of ablations.json / ablations.csv."""

    label: str
    ablation: str
    description: str
    status: str  # "ok" or "skipped"
    loss: float | None = None  # mean next-token loss (nats) over targets 2..T
    perplexity: float | None = None
    delta: Interval | None = None  # per-sample loss minus the unablated loss, mean and 95 % interval
    sink_percent: dict[str, list[float]] = field(default_factory=dict)  # {eps: [Sink_1..Sink_K]}
    sink_percent_window: dict[str, list[float]] | None = None  # window-normalised alpha (window only)
    # where the sink is after the ablation: the largest Sink_k at the headline eps, {"k", "percent", "eps"}
    sink_top: dict[str, Any] | None = None
    sink_1_by_layer: list[float] = field(default_factory=list)
    loss_by_position: list[float] = field(default_factory=list)  # entry p-1: loss of token p+1, p = 1..T-1
    loss_by_position_ci: list[list[float | None]] = field(default_factory=list)  # [low, high]
    delta_by_position: list[float] = field(default_factory=list)
    delta_by_position_ci: list[list[float | None]] = field(default_factory=list)  # [low, high]
    focus: dict[str, Any] | None = None  # where the ablation bites (window: p > W)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["delta"] = self.delta.to_dict() if self.delta is not None else None
        return d


@dataclass(repr=False)
class AblateResult:
    """Everything ablations.json holds, plus where it was written."""

    model: str
    input: str
    length: int
    samples: int
    requested_samples: int
    skipped: int
    bos: str
    dtype: str
    device: str
    backend: str
    epsilon: float
    eps: list[float]
    options: dict[str, Any]
    baseline: AblationRow
    rows: list[AblationRow]
    massive: dict[str, Any] | None = None
    streaming_llm: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    first_token: dict[str, Any] | None = None  # position 1, as metrics.json's `first_token`
    out: str | None = None
    written: list[str] = field(default_factory=list)

    def row(self, label: str) -> AblationRow:
        for r in [self.baseline, *self.rows]:
            if r.label == label:
                return r
        from sinklab.measure.caller import did_you_mean

        labels = [r.label for r in [self.baseline, *self.rows]]
        raise KeyError(f"no row {label!r}{did_you_mean(label, labels)}; rows: {', '.join(labels)}")

    # ---- for a notebook ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        eps = f"{self.epsilon:g}"
        parts = []
        for r in self.rows:
            if r.status != "ok" or r.delta is None:
                parts.append(f"{r.label}: skipped")
                continue
            moved = f", sink at k={r.sink_top['k']}" if r.sink_top and r.sink_top["k"] != 1 else ""
            parts.append(f"{r.label}: Δ{r.delta.mean:+.4f} Sink_1={r.sink_percent[eps][0]:.1f}%{moved}")
        return (
            f"AblateResult({self.model!r}, T={self.length}, n={self.samples}, loss={self.baseline.loss:.4f}; "
            + "; ".join(parts)
            + ")"
        )

    def _repr_html_(self) -> str:
        import html

        from sinklab.ablate.outputs import summary

        lines = "".join(f"<li>{html.escape(x)}</li>" for x in summary(self).splitlines()[3:])
        table = summary(self).splitlines()[2 : 3 + len(self.rows) + 1]
        return (
            f"<div><b>sinklab ablate</b>: {html.escape(self.model)} (T = {self.length}, n = {self.samples})"
            f"<pre style='margin:2px 0'>{html.escape(chr(10).join(table))}</pre><ul>{lines}</ul></div>"
        )

    def table(self) -> dict[str, Any]:
        """One entry per row (the unablated one first) as numpy arrays: label, loss, delta and its interval,
        Sink_1 and the largest Sink_k with its k."""
        import numpy as np

        rows = [self.baseline, *self.rows]
        eps = f"{self.epsilon:g}"

        def num(get: Callable[[AblationRow], Any]) -> Any:
            return np.array([float(v) if (v := get(r)) is not None else np.nan for r in rows])

        return {
            "label": np.array([r.label for r in rows]),
            "status": np.array([r.status for r in rows]),
            "loss": num(lambda r: r.loss),
            "delta": num(lambda r: r.delta.mean if r.delta else (0.0 if r.status == "ok" else None)),
            "delta_low": num(lambda r: r.delta.low if r.delta else None),
            "delta_high": num(lambda r: r.delta.high if r.delta else None),
            f"sink_1_eps_{eps}": num(lambda r: r.sink_percent[eps][0] if r.sink_percent else None),
            "largest_sink_k": num(lambda r: r.sink_top["k"] if r.sink_top else None),
            "largest_sink_percent": num(lambda r: r.sink_top["percent"] if r.sink_top else None),
        }

    def to_dataframe(self) -> Any:
        """`table()` as a pandas DataFrame indexed by row label (pandas is optional)."""
        columns = self.table()
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "to_dataframe needs pandas (pip install pandas); result.table() gives the same columns as "
                "numpy arrays"
            ) from None
        return pd.DataFrame(columns).set_index("label")

    def figures(self) -> dict[str, Any]:
        """The figures `sinklab ablate --out` writes, as matplotlib Figures by file name."""
        from sinklab.ablate.outputs import figures

        return figures(self)

    def plot(self) -> Any:
        """The Δ-loss figure (one bar per ablation, where the sink went beside each)."""
        from sinklab.ablate.outputs import BAR_FIGURE

        return self.figures()[BAR_FIGURE]

    def to_dict(self) -> dict[str, Any]:
        d = {
            "schema": SCHEMA,
            **{k: getattr(self, k) for k in ("model", "input", "length", "samples", "requested_samples")},
            **{
                k: getattr(self, k)
                for k in ("skipped", "bos", "dtype", "device", "backend", "epsilon", "eps")
            },
            "options": self.options,
            "baseline": self.baseline.to_dict(),
            "ablations": [r.to_dict() for r in self.rows],
            "massive": self.massive,
            "streaming_llm": self.streaming_llm,
            "first_token": self.first_token,
            "notes": self.notes,
        }
        return jsonable(d)


# ---- checks before anything loads ----------------------------------------------------------------------
def _ints(option: str, values: Sequence[Any] | None, minimum: int, maximum: int | None, what: str) -> None:
    for v in values or ():
        if not is_int(v) or v < minimum or (maximum is not None and v > maximum):
            upper = f" and <= {maximum}" if maximum is not None else ""
            raise MeasureError(f"{option} takes integers >= {minimum}{upper} ({what}), got {v!r}")
    if values is not None and len(set(values)) != len(values):
        raise MeasureError(f"{option} lists a value twice ({' '.join(map(str, values))}); give each once")


def check_ablations(names: Sequence[str] | None) -> list[str]:
    """The ablations to run, in the outputs' order; unknown names list the accepted ones."""
    if names is None:
        return ablation_names()
    names = list(names)
    if not names:
        raise MeasureError(f"--ablations needs at least one name; accepted: {', '.join(ablation_names())}")
    for n in names:
        if n not in ABLATIONS:
            raise MeasureError(f"unknown ablation {n!r}; accepted: {', '.join(ablation_names())}")
    return [n for n in ablation_names() if n in names]


def check_options(names: list[str], options: AblationOptions, length: int) -> AblationOptions:
    """Ablation options against --length, before the model loads; returns them with defaults resolved."""
    _ints("--positions", options.positions, 1, length, f"key positions from 1 to --length {length}")
    if not options.positions:
        raise MeasureError("--positions needs at least one key position (from 1)")
    _ints("--layers", options.layers, 0, None, "decoder layers, counted from 0")
    if options.heads != HEADS_SINK and options.heads is not None:
        if isinstance(options.heads, str):
            raise MeasureError(
                f"--heads takes head numbers (from 0) or {HEADS_SINK!r}, got {options.heads!r}"
            )
        _ints("--heads", options.heads, 0, None, f"heads counted from 0, or {HEADS_SINK!r}")
    if options.layers is not None and not options.layers:
        raise MeasureError("--layers needs at least one layer (from 0); leave it out for every layer")
    if options.heads is not None and not options.heads:
        raise MeasureError("--heads needs at least one head (from 0) or 'sink'; leave it out for every head")
    windowed = {"window", "window+sinks"} & set(names)
    if options.window is not None:
        check_count("--window", options.window, 1, " (keys a query sees, itself included)")
    if windowed:
        w = window_size(options, length)
        if w > length - 2:
            default = "" if options.window is not None else f" (the default, --length // 4 = {w})"
            raise MeasureError(
                f"--window {w}{default} leaves the first token in view of every query at --length {length}: "
                f"use --window {max(length - 2, 1)} or less, or a longer --length (at least {w + 2})"
            )
    _ints("--sink-tokens", options.sink_tokens, 1, length - 1, "first tokens window+sinks keeps in view")
    if not options.sink_tokens:
        raise MeasureError("--sink-tokens needs at least one count S >= 1")
    token = options.swap_token
    if token != SWAP_RANDOM and (not is_int(token) or token < 0):
        raise MeasureError(f"--swap-token takes a token id >= 0 or {SWAP_RANDOM!r}, got {token!r}")
    check_count("--seed", options.seed, 0)
    if options.massive_layer is not None:
        check_count("--massive-layer", options.massive_layer, 0, " (a decoder block, from 0)")
    t = options.massive_threshold
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t <= 1:
        raise MeasureError(
            f"--massive-threshold must be a number > 1 (a dim is massive when |h| > threshold x median), "
            f"got {t!r}"
        )
    return replace(options, window=window_size(options, length) if windowed else options.window)


def _check_against_model(options: AblationOptions, n_layers: int, n_heads: int, vocab: int) -> None:
    bad_layer = next((v for v in options.layers or () if v >= n_layers), None)
    if bad_layer is not None:
        raise MeasureError(
            f"--layers {bad_layer} is out of range: the model has {n_layers} layers (0..{n_layers - 1})"
        )
    if isinstance(options.heads, tuple):
        bad = next((v for v in options.heads if v >= n_heads), None)
        if bad is not None:
            raise MeasureError(
                f"--heads {bad} is out of range: the model has {n_heads} heads (0..{n_heads - 1})"
            )
    if options.massive_layer is not None and options.massive_layer >= n_layers:
        raise MeasureError(
            f"--massive-layer {options.massive_layer} is out of range: the model has {n_layers} blocks "
            f"(0..{n_layers - 1})"
        )
    if options.swap_token != SWAP_RANDOM and int(options.swap_token) >= vocab:
        raise MeasureError(
            f"--swap-token {options.swap_token} is outside the model's vocabulary (ids 0..{vocab - 1})"
        )


# ---- models --------------------------------------------------------------------------------------------
def sinklab_notes(net: nn.Module) -> list[str]:
    """What a reader should know about how a SinkLM's attention is edited."""
    cfg = net.config
    notes = [
        "a sinklab model, run natively: its attention module applies each edit (sinklab.model.attention)"
    ]
    attention = net.layers[0].self_attn
    if not attention.kernel.normalize:
        notes.append(
            f"kernel {cfg.attention.kernel} without normalisation: a removed key's weight is dropped and the "
            "other keys keep theirs (there is no denominator to renormalise)"
        )
    if not attention.kernel.rows_sum_to_one:
        notes.append("its rows need not sum to 1: Sink_k uses the paper's proxy (|w| normalised per row)")
    if attention.kernel.linear_scan and cfg.attention.backend == "auto":
        notes.append("edits that remove keys run the blockwise path (prefix sums cannot drop a key)")
    if net.sink_token is not None or attention.kv_bias.has_slot:
        notes.append(
            "the K/V bias slot and a prepended sink token are not token positions: every edit leaves them "
            "visible, and massive-* edits the first input token"
        )
    return notes


class _ShapeProbe(AttentionEdit):
    """Changes nothing; notes each layer's query and key/value head counts."""

    def __init__(self) -> None:
        self.heads: list[tuple[int, int]] = []

    def value(self, layer, value, n_heads):
        self.heads.append((n_heads, value.shape[1]))
        return value


@dataclass
class Calibration:
    alpha_first: torch.Tensor  # (L, H)
    n_layers: int
    n_heads: int
    n_kv_heads: int
    massive: MassiveTable  # the first token's dims at every block's output


def calibrate(runner: ModelRunner, batch: torch.Tensor, eps: float) -> Calibration:
    """One unablated forward of the first batch: alpha_1 per head, head counts and block outputs."""
    counts = SinkCounts(eps=[eps], positions=1)
    dims = MassiveObserver()
    probe = _ShapeProbe()
    observe(runner, batch, Observers((counts, dims)), len(batch), probe if runner.can_edit else None)
    alpha = torch.from_numpy(counts.mean_alpha()[..., 0])
    n_layers, n_heads = alpha.shape
    n_kv = probe.heads[0][1] if probe.heads else n_heads
    return Calibration(alpha, n_layers, n_heads, n_kv, dims.table)


# ---- the run -------------------------------------------------------------------------------------------
def plan(
    runner: ModelRunner,
    ids: torch.Tensor,
    names: list[str],
    options: AblationOptions,
    eps: float,
    batch_size: int,
    vocab_size: int,
    draw_size: int | None = None,
) -> tuple[list[Intervention], list[Massive]]:
    """Calibrate on the first batch, check the options against the model, and build each ablation's forward
    passes; the list holds the massive dimensions once an ablation has asked for them."""
    cal = calibrate(runner, ids[:batch_size], eps)
    _check_against_model(options, cal.n_layers, cal.n_heads, vocab_size)
    found: list[Massive] = []

    def massive() -> Massive:
        if not found:
            found.append(find_massive(cal.massive, options.massive_threshold, options.massive_layer))
        return found[0]

    ctx = AblationContext(
        options=options,
        length=int(ids.shape[1]),
        n_layers=cal.n_layers,
        n_heads=cal.n_heads,
        n_kv_heads=cal.n_kv_heads,
        vocab_size=vocab_size,
        draw_size=draw_size or vocab_size,
        samples=int(ids.shape[0]),
        blocks=runner.blocks,
        lead=runner.lead,
        eps=eps,
        alpha_first=cal.alpha_first,
        massive=massive,
    )
    return [iv for name in names for iv in ABLATIONS.get(name)(ctx)], found


@dataclass
class _Pass:
    intervention: Intervention | None  # None: the unablated model
    loss: LossStats
    sinks: SinkCounts


def run_pass(
    runner: ModelRunner,
    ids: torch.Tensor,
    iv: Intervention | None,
    observer: SinkCounts,
    batch_size: int,
    losses: Callable[[int, torch.Tensor], None],
    progress: bool = False,
) -> None:
    """One pass over every batch of ids under `iv` (None: unablated), feeding `observer`; `losses(start,
    (B, T-1))` receives the losses of the original tokens 2..T (swap-first changes token 1 only)."""
    x = ids
    if iv is not None and iv.ids is not None:
        x = torch.cat([iv.ids(ids[s : s + batch_size], s) for s in range(0, len(ids), batch_size)])

    def add(start: int, logits: torch.Tensor) -> None:
        losses(start, token_losses(logits, ids[start : start + batch_size]))

    with iv.installed() if iv is not None else contextlib.nullcontext():
        edit = iv.edit if iv is not None else None
        observe(runner, x, observer, batch_size, edit, progress=progress, desc="ablate", logits=add)


def run_passes(
    runner: ModelRunner,
    ids: torch.Tensor,
    interventions: list[Intervention],
    eps: list[float],
    batch_size: int,
    progress: bool = False,
) -> tuple[_Pass, list[_Pass]]:
    """The unablated pass over every batch, then each ablated pass on the same tokens; each sample's loss
    is paired with its unablated loss (kept per token: 8 bytes x samples x T)."""
    length = ids.shape[1]
    positions = min(
        length,
        max(
            [SINK_POSITIONS, *[max(iv.params.get("positions", [0])) + SINK_POSITIONS for iv in interventions]]
        ),
    )
    base_losses: list[torch.Tensor] = []

    def run(iv: Intervention | None) -> _Pass:
        window = iv.window if iv is not None else None
        sinks = SinkCounts(eps=eps, positions=positions, window=window, query_block=runner.query_block)
        p = _Pass(iv, LossStats(length, focus=iv.focus if iv is not None else None), sinks)

        def add(start: int, losses: torch.Tensor) -> None:
            if iv is None:
                base_losses.append(losses)
            p.loss.add(losses, base_losses[start // batch_size])

        run_pass(runner, ids, iv, sinks, batch_size, add, progress)
        return p

    base = run(None)
    return base, [run(iv) for iv in interventions if iv.skipped is None]


def _row(p: _Pass, name: str, description: str) -> AblationRow:
    iv = p.intervention
    loss = p.loss
    by_pos = loss.loss_by_position()
    by_delta = loss.delta_by_position() if iv is not None else []
    row = AblationRow(
        label=iv.label if iv is not None else BASELINE,
        ablation=name,
        description=description,
        status="ok",
        loss=loss.mean_loss,
        perplexity=math.exp(min(loss.mean_loss, 700.0)),
        delta=loss.delta_interval() if iv is not None else None,
        sink_percent=(sinks := p.sinks.sink_percent()),
        sink_top=sink_top(sinks),
        sink_percent_window=p.sinks.sink_percent(window=True) if p.sinks.window is not None else None,
        sink_1_by_layer=p.sinks.sink_1_by_layer(),
        loss_by_position=[i.mean for i in by_pos],
        loss_by_position_ci=[[i.low, i.high] for i in by_pos],
        delta_by_position=[i.mean for i in by_delta],
        delta_by_position_ci=[[i.low, i.high] for i in by_delta],
        params=iv.params if iv is not None else {},
        notes=iv.notes if iv is not None else [],
    )
    focus = loss.focus_interval()
    if focus is not None and loss.focus is not None:
        row.focus = {
            "positions": list(loss.focus),
            "loss": loss.focus_loss / loss.n,
            "baseline_loss": loss.focus_base / loss.n,
            "delta": focus.to_dict(),
        }
    return row


def streaming_verdict(rows: list[AblationRow]) -> dict[str, Any] | None:
    """Does windowed attention break once the first token leaves the window, and do kept sinks restore it?"""
    window = next((r for r in rows if r.ablation == "window" and r.focus), None)
    if window is None:
        return None
    d = window.focus["delta"]
    breaks = d["ci_low"] is not None and d["ci_low"] > 0 and d["mean"] > BREAK_NATS
    restored = {}
    for r in rows:
        if r.ablation == "window+sinks" and r.focus:
            gap = r.focus["delta"]["mean"]
            share = 1.0 - gap / d["mean"] if d["mean"] > 0 else None
            restored[str(r.params["sink_tokens"])] = {
                "delta": r.focus["delta"],
                "share_restored": share,
                "restores": bool(breaks and share is not None and share >= RESTORE_SHARE),
            }
    fixed = [s for s, v in restored.items() if v["restores"]]
    first, last = window.focus["positions"]
    if not breaks:
        verdict = "no: windowed attention does not break this model"
        why = f"loss on positions {first}..{last} changes by {d['mean']:+.4f} nats (bar: +{BREAK_NATS:g})"
    elif fixed:
        verdict = "yes: the window breaks the model and keeping the first tokens restores it"
        why = (
            f"window: {d['mean']:+.3f} nats on positions {first}..{last}; restored by S = {', '.join(fixed)}"
        )
    elif restored:
        verdict = "partly: the window breaks the model but the kept first tokens do not restore it"
        why = (
            f"window: {d['mean']:+.3f} nats on positions {first}..{last}; "
            f"less than {RESTORE_SHARE:.0%} restored"
        )
    else:
        verdict = "the window breaks the model (window+sinks was not run)"
        why = f"window: {d['mean']:+.3f} nats on positions {first}..{last}"
    return {
        "window": window.params["window"],
        "positions": [first, last],
        "window_delta": d,
        "sinks": restored,
        "shows_streaming_llm_effect": bool(breaks and fixed),
        "verdict": verdict,
        "why": why,
        "rule": (
            f"breaks: the loss on query positions p > W rises by > {BREAK_NATS:g} nats with a 95 % interval "
            f"above 0; restores: window+sinks wins back >= {RESTORE_SHARE:.0%} of that rise"
        ),
    }


# ---- the entry point -----------------------------------------------------------------------------------
def ablate(
    model: str | nn.Module,
    source: Any = "random",
    ablations: Sequence[str] | None = None,
    config: MeasureConfig | None = None,
    options: AblationOptions | None = None,
    *,
    out: str | Path | None = None,
    plots: bool = True,
    **fields: Any,
) -> AblateResult:
    """Run the chosen ablations (default: all) of `model` on `source` (an input SPEC string, or token ids: a
    tensor, array or list) and compare each with the unablated model on the same tokens; see
    docs/ablate.md. `config` is `sinklab measure`'s (MeasureConfig), `options` the ablation options
    (AblationOptions); keyword `fields` of either (length=, samples=, positions=, window=, massive_layer=,
    ...) go on top. Every option is checked before the model loads; a model object comes back as it came;
    errors name these arguments, not the CLI's flags."""
    own = {f.name for f in dataclass_fields(AblationOptions)}
    check_keywords("ablate_model", fields, own | {f.name for f in dataclass_fields(MeasureConfig)})
    with python_names():
        ids = token_ids(source)
        if ids is not None and config is None:
            fields = {"length": int(ids.shape[1]), "samples": int(ids.shape[0]), **fields}
        return ablate_command(model, source, ablations, config, options, out=out, plots=plots, **fields)


def ablate_command(
    model: str | nn.Module,
    source: Any = "random",
    ablations: Sequence[str] | None = None,
    config: MeasureConfig | None = None,
    options: AblationOptions | None = None,
    *,
    out: str | Path | None = None,
    plots: bool = True,
    **fields: Any,
) -> AblateResult:
    """`ablate` as the command line runs it (errors name the flags)."""
    names = check_ablations(ablations)
    own = {f.name for f in dataclass_fields(AblationOptions)}
    options = replace(options or AblationOptions(), **{k: v for k, v in fields.items() if k in own})
    cfg = make_config(config, {k: v for k, v in fields.items() if k not in own})
    options = check_options(names, options, cfg.length)
    check_spec(source)
    with into_out(out) as folder, preserved(model):
        opened = open_measurement(model, source, cfg, "ablate")
        result = _ablate(opened, source_label(source), names, options, cfg)
        if folder is not None:
            result.written = [str(p) for p in write_outputs(result, folder, plots=plots)]
            result.out = str(out)
    return result


def _ablate(
    opened: Opened, source: str, names: list[str], options: AblationOptions, cfg: MeasureConfig
) -> AblateResult:
    runner, ids = opened.runner, opened.ids
    notes = list(opened.notes)
    if runner.backend == BACKEND_SINKLAB:
        net = runner.model
        if net.config.attention.backend == "linear_scan":
            raise SinklabError(
                "this sinklab model demands attention.backend='linear_scan', whose prefix sums cannot remove "
                "keys; save it with attention.backend 'auto' (the same weights) to ablate it"
            )
        notes.extend(sinklab_notes(net))
    if not runner.can_edit and set(names) & set(ATTENTION_ABLATIONS):
        model_type = getattr(getattr(runner.model, "config", None), "model_type", type(runner.model).__name__)
        why = getattr(runner, "fallback_reason", "") or "it does not route attention through the registry"
        raise SinklabError(
            f"{', '.join(n for n in names if n in ATTENTION_ABLATIONS)} cannot be applied to {opened.name} "
            f"(model type {model_type}): it is measured on the eager fallback ({why}), where attention edits "
            "cannot be applied; the others can "
            f"(--ablations {' '.join(n for n in names if n not in ATTENTION_ABLATIONS) or 'swap-first'})"
        )
    eps, batch_size = cfg.eps_list, cfg.batch_size
    interventions, massive = plan(
        runner, ids, names, options, eps[0], batch_size, opened.vocab_size, opened.draw_size
    )
    base, passes = run_passes(runner, ids, interventions, eps, batch_size, cfg.progress)
    done = {id(p.intervention): p for p in passes}
    rows = []
    for iv in interventions:
        p = done.get(id(iv))
        if p is None:
            rows.append(
                AblationRow(
                    label=iv.label,
                    ablation=iv.ablation,
                    description=describe(iv.ablation),
                    status="skipped",
                    params=iv.params,
                    notes=iv.notes,
                    skipped=iv.skipped,
                )
            )
        else:
            rows.append(_row(p, iv.ablation, describe(iv.ablation)))
    dtype, device = opened.dtype_device
    return AblateResult(
        model=opened.name,
        input=source,
        length=int(ids.shape[1]),
        samples=int(ids.shape[0]),
        requested_samples=opened.inputs.requested,
        skipped=opened.inputs.skipped,
        bos=cfg.bos,
        dtype=dtype,
        device=device,
        backend=runner.backend,
        epsilon=eps[0],
        eps=eps,
        options={**asdict(options), "ablations": names},
        baseline=_row(base, BASELINE, "the unablated model"),
        rows=rows,
        massive=massive[0].to_dict() if massive else None,
        streaming_llm=streaming_verdict(rows),
        notes=notes + opened.inputs.notes,
        first_token=opened.inputs.first_token,
    )
