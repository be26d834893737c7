"""What `sinklab ablate --out DIR` writes: ablations.json, ablations.csv, loss_by_position.csv, two figures
and report.html (figures embedded); and the terminal summary.

Everything is rendered in memory, then each file replaces its old version in one step, ablations.json last.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
from pathlib import Path
from typing import Any

import numpy as np

from sinklab.io import atomic_write_bytes, atomic_write_json, atomic_write_text

BAR_FIGURE = "delta_loss.png"
WINDOW_FIGURE = "window_loss.png"
MAX_CURVE_POINTS = 256  # longer inputs are averaged into this many position bins in the figure
SYMLOG_ABOVE = 0.5  # nats: past this, the bar chart switches to a symmetric log axis


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table_rows(result: Any) -> list[list[Any]]:
    eps = f"{result.epsilon:g}"
    header = [
        "ablation",
        "label",
        "status",
        "loss",
        "perplexity",
        "delta_loss",
        "delta_ci_low",
        "delta_ci_high",
        "delta_sd",
        "samples",
        f"sink_1_eps_{eps}",
        f"sink_1_window_eps_{eps}",
        "focus_positions",
        "focus_delta",
        "focus_ci_low",
        "focus_ci_high",
        "note",
    ]
    rows: list[list[Any]] = [header]
    for r in [result.baseline, *result.rows]:
        d = r.delta
        f = r.focus
        rows.append(
            [
                r.ablation if r.label != "none" else "none",
                r.label,
                r.status,
                _fmt(r.loss),
                _fmt(r.perplexity, 3),
                _fmt(d.mean if d else (0.0 if r.status == "ok" else None), 5),
                _fmt(d.low if d else None, 5),
                _fmt(d.high if d else None, 5),
                _fmt(d.sd if d else None, 5),
                d.n if d else (result.samples if r.status == "ok" else ""),
                _fmt(r.sink_percent[eps][0], 2) if r.sink_percent else "",
                _fmt(r.sink_percent_window[eps][0], 2) if r.sink_percent_window else "",
                f"{f['positions'][0]}-{f['positions'][1]}" if f else "",
                _fmt(f["delta"]["mean"], 5) if f else "",
                _fmt(f["delta"]["ci_low"], 5) if f else "",
                _fmt(f["delta"]["ci_high"], 5) if f else "",
                r.skipped or "",
            ]
        )
    return rows


def position_rows(result: Any) -> list[list[Any]]:
    ok = [r for r in [result.baseline, *result.rows] if r.status == "ok"]
    rows: list[list[Any]] = [["position", *[f"loss[{r.label}]" for r in ok]]]
    for p in range(result.length - 1):
        rows.append([p + 1, *[_fmt(r.loss_by_position[p], 5) for r in ok]])
    return rows


def write_outputs(result: Any, out: Path, plots: bool = True) -> list[Path]:
    files: list[tuple[str, str | bytes]] = [
        ("ablations.csv", _csv(table_rows(result))),
        ("loss_by_position.csv", _csv(position_rows(result))),
    ]
    figures: dict[str, bytes] = {}
    if plots:
        figures[BAR_FIGURE] = delta_figure(result)
        window = window_figure(result)
        if window is not None:
            figures[WINDOW_FIGURE] = window
        files += list(figures.items())
    files.append(("report.html", report_html(result, figures)))
    written = []
    for name, data in files:
        write = atomic_write_bytes if isinstance(data, bytes) else atomic_write_text
        written.append(write(out / name, data))
    written.append(atomic_write_json(out / "ablations.json", result.to_dict()))
    return written


# ---- figures -------------------------------------------------------------------------------------------
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _colour(row: Any) -> str:
    """Red: the loss rises (interval above 0); green: it falls; grey: the interval spans 0 or skipped."""
    d = row.delta
    if d is None or d.low is None:
        return "#8c959f"
    return "#cf222e" if d.low > 0 else "#1a7f37" if d.high < 0 else "#8c959f"


def delta_figure(result: Any) -> bytes:
    """Horizontal bars: mean change of loss per ablation with its 95 % interval; skipped rows named."""
    plt = _plt()
    rows = result.rows
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.6), layout="constrained")
    y = np.arange(len(rows))[::-1]
    means = [r.delta.mean if r.delta else 0.0 for r in rows]
    lows = [r.delta.mean - r.delta.low if r.delta and r.delta.low is not None else 0.0 for r in rows]
    highs = [r.delta.high - r.delta.mean if r.delta and r.delta.high is not None else 0.0 for r in rows]
    colours = [_colour(r) for r in rows]
    ax.barh(y, means, xerr=[lows, highs], color=colours, alpha=0.85, capsize=3, height=0.6)
    ax.axvline(0, color="black", lw=0.8)
    span = max([abs(m) + max(lo, hi) for m, lo, hi in zip(means, lows, highs, strict=True)] + [1e-3])
    nonzero = [abs(m) for m in means if abs(m) > 0]
    if span > SYMLOG_ABOVE and nonzero and min(nonzero) < span / 50:
        # Effects from hundredths to whole nats: a linear axis would flatten the small ones to nothing.
        ax.set_xscale("symlog", linthresh=0.01)
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(6))
    for yi, r in zip(y, rows, strict=True):
        # The numbers in a column right of the axes, never over a bar or an interval.
        d = r.delta
        if r.status != "ok":
            text = "skipped"
        elif d is not None and d.low is not None:
            text = f"{d.mean:+.3g} [{d.low:+.3g}, {d.high:+.3g}]"
        else:
            text = f"{d.mean:+.3g} (one sample: no interval)" if d is not None else ""
        ax.annotate(
            text, (1.02, yi), xycoords=("axes fraction", "data"), va="center", fontsize=8, color="#333"
        )
    ax.set_yticks(y, [r.label for r in rows])
    ax.set_xlabel(
        "Δ loss vs the unablated model (nats per token), 95 % interval over samples\n"
        "red: the loss rises, green: it falls, grey: the interval spans 0"
    )
    ax.set_title(
        f"{_short(result.model)}: unablated loss {result.baseline.loss:.3f}, {result.samples} samples of "
        f"{result.length} tokens",
        fontsize=10,
    )
    return _png(fig)


def _binned(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions, values), averaged into at most MAX_CURVE_POINTS bins of consecutive positions."""
    pos = np.arange(1, len(values) + 1, dtype=float)
    if len(values) <= MAX_CURVE_POINTS:
        return pos, values
    edges = np.linspace(0, len(values), MAX_CURVE_POINTS + 1).astype(int)
    return (
        np.array([pos[a:b].mean() for a, b in itertools.pairwise(edges)]),
        np.array([values[a:b].mean() for a, b in itertools.pairwise(edges)]),
    )


def window_figure(result: Any) -> bytes | None:
    """Loss by position for the unablated model, the window and window+sinks, and the change against the
    unablated model; a dashed line where the first token leaves the window."""
    windowed = [r for r in result.rows if r.ablation in ("window", "window+sinks") and r.status == "ok"]
    if not windowed:
        return None
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6), sharex=True, layout="constrained")
    w = windowed[0].params["window"]
    cmap = plt.get_cmap("viridis")
    styles = {"none": ("black", 2.0)}
    for i, r in enumerate(windowed):
        styles[r.label] = (
            ("#cf222e", 1.4) if r.ablation == "window" else (cmap(0.25 + 0.5 * i / len(windowed)), 1.4)
        )
    short = len(result.baseline.loss_by_position) <= MAX_CURVE_POINTS
    for r in [result.baseline, *windowed]:
        colour, lw = styles[r.label]
        pos, mean = _binned(np.asarray(r.loss_by_position, dtype=float))
        top.plot(pos, mean, color=colour, lw=lw, label=r.label)
        if r.label == "none" and short and r.loss_by_position_ci[0][0] is not None:
            # Only the reference's band: the others' would cover it; their spread is in the lower panel.
            ci = np.asarray(r.loss_by_position_ci, dtype=float)
            top.fill_between(pos, ci[:, 0], ci[:, 1], color="black", alpha=0.1, lw=0)
        if r.label != "none":
            pos, delta = _binned(np.asarray(r.delta_by_position, dtype=float))
            bottom.plot(pos, delta, color=colour, lw=lw, label=r.label)
            if short and r.delta_by_position_ci and r.delta_by_position_ci[0][0] is not None:
                ci = np.asarray(r.delta_by_position_ci, dtype=float)
                bottom.fill_between(pos, ci[:, 0], ci[:, 1], color=colour, alpha=0.12, lw=0)
    for ax in (top, bottom):
        ax.axvline(w + 0.5, color="#666", ls="--", lw=0.9)
    bottom.axhline(0, color="black", lw=0.8)
    top.set_ylabel("loss (nats; grey: 95 %\ninterval of the unablated)")
    top.set_title(
        f"window W = {w}: query p sees keys p-W+1..p; key 1 leaves the window after p = {w} (dashed)",
        fontsize=10,
    )
    top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    bottom.set_ylabel("Δ loss vs unablated\n(bands: 95 % interval)")
    bottom.set_xlabel("query position p (predicting token p+1; from 1)")
    if len(windowed[0].loss_by_position) > MAX_CURVE_POINTS:
        bottom.annotate(
            f"positions averaged in {MAX_CURVE_POINTS} bins",
            (0.01, 0.02),
            xycoords="axes fraction",
            fontsize=7,
        )
    return _png(fig)


def _short(name: str) -> str:
    return name if len(name) <= 48 else "…" + name[-47:]


# ---- the HTML page -------------------------------------------------------------------------------------
def report_html(result: Any, figures: dict[str, bytes]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sinklab.ablate", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    images = {
        name: "data:image/png;base64," + base64.b64encode(data).decode() for name, data in figures.items()
    }
    eps = f"{result.epsilon:g}"
    return env.get_template("report.html.j2").render(
        r=result,
        eps=eps,
        rows=[result.baseline, *result.rows],
        bar=images.get(BAR_FIGURE),
        window=images.get(WINDOW_FIGURE),
        fmt=_fmt,
    )


# ---- terminal ------------------------------------------------------------------------------------------
def summary(result: Any) -> str:
    eps = f"{result.epsilon:g}"
    lines = [
        f"model: {result.model}   backend: {result.backend}   {result.dtype} on {result.device}",
        f"input: {result.input}   samples: {result.samples} of {result.requested_samples} asked   "
        f"length: {result.length}   loss over tokens 2..{result.length}",
    ]
    width = max(len(r.label) for r in [result.baseline, *result.rows])
    lines.append(f"{'ablation'.ljust(width)}  {'loss':>8}  {'ppl':>9}  {'Δ loss [95% interval]':<30}  Sink_1")
    for r in [result.baseline, *result.rows]:
        if r.status != "ok":
            lines.append(f"{r.label.ljust(width)}  skipped: {r.skipped}")
            continue
        d = r.delta
        delta = (
            ""
            if d is None
            else f"{d.mean:+.4f}" + (f" [{d.low:+.4f}, {d.high:+.4f}]" if d.low is not None else "")
        )
        sink = f"{r.sink_percent[eps][0]:6.2f}%"
        if r.sink_percent_window:
            sink += f" (window-normalised α: {r.sink_percent_window[eps][0]:.2f}%)"
        lines.append(f"{r.label.ljust(width)}  {r.loss:8.4f}  {r.perplexity:9.3f}  {delta:<30}  {sink}")
    if result.massive and result.massive.get("layer") is not None:
        m = result.massive
        lines.append(
            f"massive dims of the first token: {m['dims']} at block {m['layer']} (from 0), "
            f"{', '.join(f'{x:.0f}x' for x in m['ratios'][:4])} the median |h|"
        )
    if result.streaming_llm:
        s = result.streaming_llm
        lines.append(f"StreamingLLM effect: {s['verdict']} ({s['why']})")
    lines.append(f"Sink_1 at ε = {eps}, in % of (sample, layer, head); layers and heads count from 0")
    lines += [f"note: {n}" for n in result.notes]
    if result.out:
        lines.append(f"wrote ablations.json, CSV tables, figures and report.html to {result.out}")
    return "\n".join(lines)
