"""Every figure of sinklab (measure, ablate, the demo and the reproduce report), and how it is saved.

Each figure function draws on a matplotlib.figure.Figure with constrained layout and returns it; the caller
keeps it as PNG bytes (`png_bytes`) or writes it atomically (`save_png`). pyplot is never imported: a run
neither switches the caller's backend (a notebook's stays as it was) nor keeps figures alive in pyplot's
registry after their PNG is written, and constrained layout fits the labels in one draw (bbox_inches="tight"
drew twice). matplotlib itself is imported when the first figure is drawn, so `--no-plots` runs never load it.

Conventions: layers and heads count from 0 (as in metrics.json), positions from 1 (as in the paper's Sink_k).
"""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sinklab.io import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
MAX_CURVE_POINTS = 256  # longer loss-by-position curves are averaged into this many position bins
SYMLOG_ABOVE = 0.5  # nats: past this, the ablation bar chart switches to a symmetric log axis


# ---- figures and files ---------------------------------------------------------------------------------
def figure(figsize: tuple[float, float]) -> Figure:
    """A figure with constrained layout, drawn by Agg when saved, owned by no pyplot registry."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def save_png(fig: Figure, path: Path) -> Path:
    """Write the figure as PNG in one step (temporary file, then os.replace); returns the path."""
    return atomic_write_bytes(path, png_bytes(fig))


def png_data_uri(png: Path | bytes) -> str:
    """A PNG (its file, or its bytes) as a data: URI, for a self-contained HTML page."""
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _colormap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name]


def _integer_ticks(ax: Axes) -> None:
    """Whole-number ticks only (layers, heads, positions), even for a single row (min_n_ticks=1: the default
    2 falls back to fractions on an axis that holds one integer)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _log_axis_numbers(ax: Axes) -> None:
    """Plain numbers (0.6, 2, 40) on a log y axis instead of 6 x 10^-1: easier to read, and no mathtext to
    typeset. Which ticks get a label is LogFormatter's choice (minor labels thin out over many decades)."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    ax.yaxis.set_major_formatter(PlainLogFormatter())
    ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


# ---- one measurement: α, Sink_k, attention maps, norms -----------------------------------------------------
def alpha_heatmap(
    alpha_lh: np.ndarray,
    title: str = r"first-token importance $\alpha_1$",
    annotate: bool = False,
    marks: dict[int, str] | None = None,
) -> Figure:
    """α (one position) by layer x head, on the one colour scale 0-1 that models compared side by side share;
    `annotate` writes each cell's value in it (for a few layers and heads); `marks` labels layers (a
    windowed layer's "w=512") at the right of their row."""
    alpha_lh = np.asarray(alpha_lh, dtype=float)  # (L, H)
    rows, cols = alpha_lh.shape
    fig = figure((max(4.0, cols * 0.45 + 2), max(3.0, rows * 0.4 + 1.5)))
    ax = fig.subplots()
    im = ax.imshow(alpha_lh, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    if annotate:
        for i, j in itertools.product(range(rows), range(cols)):
            value = alpha_lh[i, j]
            colour = "white" if value < 0.6 else "black"  # readable on viridis' dark and light ends
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)
    ax.set(xlabel="head (from 0)", ylabel="layer (from 0)", title=title)
    _integer_ticks(ax)
    if marks:
        for layer, text in marks.items():
            ax.annotate(
                text,
                (1.0, layer),
                xycoords=("axes fraction", "data"),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                ha="left",
                fontsize=7,
                color="crimson",
            )
        ax.text(1.0, 1.01, "windowed", transform=ax.transAxes, fontsize=7, color="crimson", ha="left")
    fig.colorbar(im, ax=ax, pad=0.12 if marks else 0.05)
    return fig


def attention_map(weights_qk: np.ndarray, title: str) -> Figure:
    """A (query x key) attention map, positions from 1, on the scale 0-1 (rows sum to 1; a map without
    normalisation is the proxy-normalised one); the upper triangle (future keys) is left blank."""
    weights_qk = np.asarray(weights_qk, dtype=float)
    masked = np.ma.masked_where(np.triu(np.ones_like(weights_qk), 1) > 0, weights_qk)
    n_pos = masked.shape[0]
    fig = figure((4.5, 4.2))
    ax = fig.subplots()
    extent = (0.5, n_pos + 0.5, n_pos + 0.5, 0.5)  # cells centred on positions 1..n
    # nearest: each position a visible cell (smoothing would blur the one-key-wide sink column away).
    # magma reversed: the heaviest keys (the sink column) darkest, never the palest colour next to the blank
    # upper triangle.
    im = ax.imshow(masked, cmap="magma_r", vmin=0, vmax=1, extent=extent, interpolation="nearest")
    _integer_ticks(ax)
    ax.set(xlabel="key position (from 1)", ylabel="query position (from 1)")
    fig.suptitle(title)  # over the axes and the colorbar: a long title would run into the colorbar's label
    fig.colorbar(im, ax=ax, label="attention weight")
    return fig


def sink_by_position(sink_percent_by_eps: dict[str, Sequence[float]]) -> Figure:
    """Sink_k for k = 1..n as bars, one bar per threshold ε at each position."""
    keys = list(sink_percent_by_eps)
    n = len(sink_percent_by_eps[keys[0]])  # positions 1..n
    fig = figure((6, 3.2))
    ax = fig.subplots()
    width = 0.8 / len(keys)
    for i, e in enumerate(keys):
        ax.bar(
            np.arange(1, n + 1) + (i - (len(keys) - 1) / 2) * width,
            sink_percent_by_eps[e],
            width=width,
            label=f"ε = {e}",
        )
    ax.set(xlabel="key position k", ylabel=r"Sink$_k^\epsilon$ (%)", ylim=(0, 100), title="Sink by position")
    ax.legend()
    return fig


def norm_panels(tables: dict[str, np.ndarray]) -> Figure:
    """One log-scale panel per table (rows: layers or hidden states, columns: positions), one line per row
    coloured by depth with a colorbar (not a legend of a dozen entries)."""
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import MaxNLocator

    fig = figure((4.4 * len(tables), 3.2))
    axes = fig.subplots(1, len(tables), squeeze=False)[0]
    for ax, (name, table) in zip(axes, tables.items(), strict=True):
        table = np.asarray(table, dtype=float)
        positions = np.arange(1, table.shape[1] + 1)
        lines = LineCollection(
            [np.column_stack([positions, row]) for row in table], cmap="viridis", linewidths=0.8
        )
        lines.set_array(np.arange(table.shape[0]))
        ax.add_collection(lines)
        ax.set(xlabel="position (from 1)", ylabel="ℓ2 norm", title=name.replace("_", " "), yscale="log")
        ax.autoscale_view()
        _log_axis_numbers(ax)
        # hidden_norm row l is the state after l blocks (0: embeddings); key/value rows are layers from 0.
        label = "after n blocks (0: embeddings)" if name == "hidden_norm" else "layer (from 0)"
        bar = fig.colorbar(lines, ax=ax, label=label)
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    return fig


# ---- training curves (the demo) ----------------------------------------------------------------------------
def curves(
    histories: dict[str, list[dict[str, Any]]],
    value: Callable[[dict[str, Any]], float | None],
    ylabel: str,
    title: str,
    x_key: str = "step",
    log_y: bool = False,
) -> Figure:
    """One line per run of `value(log line)` against steps (lines without the value are left out)."""
    fig = figure((5.5, 3.2))
    ax = fig.subplots()
    for name, history in histories.items():
        points = [(h[x_key], value(h)) for h in history if value(h) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker=".", label=name)
    ax.set(xlabel=x_key, ylabel=ylabel, title=title)
    if log_y:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def eps_curves(series: dict[str, dict[str, list[tuple[float, float]]]]) -> Figure:
    """Sink_1 against steps, one colour per run and one line style per threshold ε (0.1 / 0.2 / 0.3):
    series[run][eps] = [(step, Sink_1 %), ...]."""
    fig = figure((6, 3.4))
    ax = fig.subplots()
    styles = {"0.1": ":", "0.2": "--", "0.3": "-"}
    for colour, (name, by_eps) in zip(("C0", "C3"), series.items(), strict=False):
        for eps, points in by_eps.items():
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, styles.get(eps, "-"), color=colour, label=f"{name}, ε = {eps}")
    ax.set(xlabel="step", ylabel="Sink_1 (%)", title="first-token sink during training")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def layer_curves(series: dict[str, tuple[list[float], list[list[float]]]]) -> Figure:
    """Sink_1 of each layer against steps, one panel per run: series[run] = (steps, [per layer: values])."""
    fig = figure((5 * len(series), 3.2))
    axes = fig.subplots(1, len(series), sharey=True, squeeze=False)[0]
    for ax, (name, (steps, layers)) in zip(axes, series.items(), strict=True):
        for layer, values in enumerate(layers):
            ax.plot(steps, values, label=f"layer {layer}")
        ax.set(xlabel="step", ylabel="Sink_1 (%)", title=name, ylim=(0, 100))
        ax.legend(fontsize=7, title="from 0, as in every figure", title_fontsize=7)
        ax.grid(alpha=0.3)
    return fig


# ---- the reproduce report ----------------------------------------------------------------------------------
def _band(ax: Axes, seeds: list[list[tuple[float, float]]], colour: Any, label: str, width: float) -> None:
    """Mean over seeds as a line, min-max over seeds as a band (steps every seed logged)."""
    common = sorted(set.intersection(*(set(x for x, _ in s) for s in seeds))) if seeds else []
    if not common:
        return
    rows = np.array([[dict(s)[x] for x in common] for s in seeds])
    ax.plot(common, rows.mean(0), color=colour, lw=width, label=label)
    if len(seeds) > 1:
        ax.fill_between(common, rows.min(0), rows.max(0), color=colour, alpha=0.18, lw=0)


def wrap(title: str, width: int = 70) -> str:
    """A long title over several lines, each line wrapped on its own (kept inside the canvas)."""
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in title.split("\n"))


def claim_figure(
    values: dict[str, list[float]],
    curves_by_run: dict[str, list[list[tuple[float, float]]]],
    ylabel: str,
    title: str,
    highlight: str = "default",
    paper: dict[str, float] | None = None,
) -> Figure:
    """One quantity, the one the claim judges (`ylabel`), in both panels. Left: each run's seed mean (bar)
    with every seed as a point, and the paper's value of the same quantity beside it (hatched bar); right
    (when the quantity is logged during training): the seed mean against steps, the seeds' min-max as a
    band, `highlight` in black."""
    paper = {k: v for k, v in (paper or {}).items() if k in values}
    fig = figure((9.5, 4.0) if curves_by_run else (6.0, 4.0))
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]}) if curves_by_run else [fig.subplots()]
    left = axes[0]
    names = list(values)
    x = np.arange(len(names))
    tab10 = _colormap("tab10")
    colours = {n: ("black" if n == highlight else tab10(i % 10)) for i, n in enumerate(names)}
    means = [float(np.mean(v)) if v else 0.0 for v in values.values()]
    width = 0.38 if paper else 0.6
    shift = width / 2 if paper else 0.0
    left.bar(
        x - shift, means, color=[colours[n] for n in names], alpha=0.35, width=width, label="ours (mean)"
    )
    for i, name in enumerate(names):
        pts = values[name]
        jitter = np.linspace(-0.08, 0.08, len(pts)) if len(pts) > 1 else np.zeros(len(pts))
        left.scatter(
            np.full(len(pts), i - shift) + jitter,
            pts,
            color=colours[name],
            s=16,
            zorder=3,
            label="ours (each seed)" if i == 0 else None,
        )
    if paper:
        heights = [paper.get(n, np.nan) for n in names]
        left.bar(
            x + shift, heights, width=width, fill=False, hatch="///", edgecolor="0.35", label="paper (60M)"
        )
    left.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    top = max([*(max(v) for v in values.values() if v), *paper.values(), 1e-9])
    left.set(ylabel=ylabel, ylim=(0, top * 1.15))
    left.grid(axis="y", alpha=0.3)
    fig.suptitle(wrap(title, 95 if curves_by_run else 60), fontsize=9, x=0.01, ha="left")
    # Below the figure, not the axes: constrained layout then keeps it clear of long rotated run names.
    fig.legend(*left.get_legend_handles_labels(), fontsize=7, loc="outside lower left", ncol=3, frameon=False)
    if curves_by_run:
        right = axes[1]
        for name, seeds in curves_by_run.items():
            _band(right, seeds, colours.get(name, "grey"), name, 2.0 if name == highlight else 1.0)
        right.set(xlabel="training step", ylabel=ylabel, ylim=(0, None))
        right.grid(alpha=0.3)
        right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def sink_dot_table(
    rows: dict[str, list[float]],
    band: tuple[float, float] | None,
    title: str,
    present: float = 5.0,
    absent: float = 1.0,
) -> Figure:
    """Which variant grew a sink? One row per run, its seeds as dots (filled: >= `present`, open: <=
    `absent`, grey between), the seed mean as a tick, the default's seed range as one band, each row
    labelled directly with its mean."""
    names = sorted(rows, key=lambda n: (n != "default", -float(np.mean(rows[n])), n))
    fig = figure((7.0, max(2.6, 1.4 + 0.22 * len(names))))
    ax = fig.subplots()
    y = np.arange(len(names))[::-1]
    if band is not None:
        ax.axvspan(*band, color="black", alpha=0.08, lw=0, label="default's seed range")
    for row, name in zip(y, names, strict=True):
        values = np.array(rows[name])
        colour = "black" if name == "default" else "#1f6feb"
        filled = values >= present
        ax.scatter(values[filled], np.full(filled.sum(), row), color=colour, s=18, zorder=3)
        ax.scatter(values[~filled], np.full((~filled).sum(), row), facecolor="none", edgecolor="0.45", s=18)
        ax.plot([values.mean()] * 2, [row - 0.3, row + 0.3], color=colour, lw=1.5)
        ax.annotate(
            f"{values.mean():.1f}",
            (1.0, row),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    ax.axvline(present, color="0.5", ls=":", lw=0.8)
    ax.set_yticks(y, names, fontsize=7)
    ax.set(
        xlabel="final Sink_1 (%), each dot a seed\n(Sink_1* on a slot; Sink_k where the sink sits at k)",
        ylim=(-0.7, len(names) - 0.3),
    )
    ax.set_title(wrap(title, 80), fontsize=9, loc="left")
    ax.grid(axis="x", alpha=0.3)
    ax.scatter([], [], color="#1f6feb", s=18, label=f"seed with Sink >= {present:g} %")
    ax.scatter([], [], facecolor="none", edgecolor="0.45", s=18, label=f"seed below {present:g} %")
    fig.legend(fontsize=7, loc="outside lower left", frameon=False, ncols=3)
    return fig


def onset_curve(
    seeds: list[list[tuple[float, float, float]]],
    title: str,
    onset: tuple[int, int] | None,
    per_seed: Sequence[int | None] = (),
) -> Figure:
    """The default run's Sink_1 against steps (bottom axis) and tokens (top axis): the seed mean, each seed
    faded, each seed's own onset as a dot on the 5 % line (`per_seed`; None: that seed never had a sink), and
    the rule's sink onset (the latest seed's) marked. seeds: per seed [(step, tokens, Sink_1 %), ...];
    onset: (step, tokens)."""
    fig = figure((6.0, 3.4))
    ax = fig.subplots()
    for run in seeds:
        ax.plot([s for s, _, _ in run], [v for _, _, v in run], color="grey", lw=0.8, alpha=0.6)
    grown = [s for s in per_seed if s is not None]
    if grown:
        never = len(per_seed) - len(grown)
        label = "each seed's onset" + (f" ({never} of {len(per_seed)} seeds: never)" if never else "")
        ax.scatter(grown, [5.0] * len(grown), color="#cf222e", s=18, zorder=4, label=label)
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    _band(ax, [[(s, v) for s, _, v in run] for run in seeds], "black", "default (seed mean)", 2.0)
    per_step = [t / s for run in seeds for s, t, _ in run if s > 0]
    if per_step:
        ratio = sum(per_step) / len(per_step)
        top = ax.secondary_xaxis("top", functions=(lambda s: s * ratio / 1e6, lambda m: m * 1e6 / ratio))
        top.set_xlabel("tokens (millions)")
    if onset is not None:
        ax.axvline(onset[0], color="#cf222e", ls="--", lw=1)
        ax.annotate(
            f"onset: step {onset[0]}\n({onset[1] / 1e6:.1f}M tokens)",
            (onset[0], ax.get_ylim()[1] * 0.9),
            xytext=(6, 0),
            textcoords="offset points",
            fontsize=8,
            color="#cf222e",
            va="top",
        )
    ax.axhline(5.0, color="grey", ls=":", lw=0.8)
    ax.set(xlabel="training step", ylabel="Sink_1 (%)")
    ax.set_title(wrap(title, 70), fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    return fig


def length_curves(by_eps: dict[str, list[list[tuple[float, float]]]], title: str) -> Figure:
    """The paper's Fig. 3 shape: Sink_1 against the evaluation length T (log scale), one line per ε (seed
    mean, min-max over seeds as a band)."""
    fig = figure((5.6, 3.4))
    ax = fig.subplots()
    viridis = _colormap("viridis")
    for i, (eps, seeds) in enumerate(by_eps.items()):
        _band(ax, seeds, viridis(i / max(1, len(by_eps) - 1)), f"ε = {eps}", 1.6)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="evaluation length T (tokens)", ylabel="Sink_1 (%)", ylim=(0, 105))
    ax.set_title(wrap(title, 70), fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return fig


# ---- ablations ---------------------------------------------------------------------------------------------
RISES, FALLS, WITHIN_NOISE = "#cf222e", "#1a7f37", "#8c959f"  # the colours of a change of loss


def _delta_colour(row: Any) -> str:
    """Red: the loss rises (interval above 0); green: it falls; grey: the interval spans 0 or skipped."""
    d = row.delta
    if d is None or d.low is None:
        return WITHIN_NOISE
    return RISES if d.low > 0 else FALLS if d.high < 0 else WITHIN_NOISE


def ablation_deltas(rows: Sequence[Any], title: str) -> Figure:
    """Horizontal bars: mean change of loss per ablation row (`.label`, `.status`, `.delta` with mean, low,
    high) with its 95 % interval, and where the sink went (`.sink_top`: the largest Sink_k); skipped rows
    named."""
    fig = figure((9, 0.45 * len(rows) + 1.6))
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    means = [r.delta.mean if r.delta else 0.0 for r in rows]
    lows = [r.delta.mean - r.delta.low if r.delta and r.delta.low is not None else 0.0 for r in rows]
    highs = [r.delta.high - r.delta.mean if r.delta and r.delta.high is not None else 0.0 for r in rows]
    colours = [_delta_colour(r) for r in rows]
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
            text = f"{d.mean:+.2g} [{d.low:+.2g}, {d.high:+.2g}]"  # two significant digits
        else:
            text = f"{d.mean:+.2g} (one sample: no interval)" if d is not None else ""
        top = getattr(r, "sink_top", None)
        if r.status == "ok" and top:  # where the sink went: the largest Sink_k after the ablation
            text += f"   sink: Sink_{top['k']} {top['percent']:.0f}%"
        ax.annotate(
            text, (1.02, yi), xycoords=("axes fraction", "data"), va="center", fontsize=8, color="#333"
        )
    ax.set_yticks(y, [r.label for r in rows])
    ax.set_xlabel(
        "Δ loss vs the unablated model (nats per token), 95 % interval over samples\n"
        "red: the loss rises, green: it falls, grey: the interval spans 0"
    )
    ax.set_title(title, fontsize=10)
    return fig


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


def window_losses(baseline: Any, windowed: Sequence[Any], window: int) -> Figure:
    """Loss by position for the unablated model (`baseline`) and the window / window+sinks rows, and the
    change against the unablated model; a dashed line where the first token leaves the window of `window`
    keys. Rows carry `.label`, `.ablation`, `.loss_by_position(_ci)` and `.delta_by_position(_ci)`."""
    fig = figure((7.5, 6))
    top, bottom = fig.subplots(2, 1, sharex=True)
    cmap = _colormap("viridis")
    styles = {"none": ("black", 2.0)}
    for i, r in enumerate(windowed):
        colour = "#cf222e" if r.ablation == "window" else cmap(0.25 + 0.5 * i / len(windowed))
        styles[r.label] = (colour, 1.4)
    short = len(baseline.loss_by_position) <= MAX_CURVE_POINTS
    for r in [baseline, *windowed]:
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
        ax.axvline(window + 0.5, color="#666", ls="--", lw=0.9)
    bottom.axhline(0, color="black", lw=0.8)
    top.set_ylabel("loss (nats; grey: 95 %\ninterval of the unablated)")
    top.set_title(
        f"window W = {window}: query p sees keys p-W+1..p; "
        f"key 1 leaves the window after p = {window} (dashed)",
        fontsize=10,
    )
    top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    bottom.set_ylabel("Δ loss vs unablated\n(bands: 95 % interval)")
    bottom.set_xlabel("query position p (predicting token p+1; from 1)")
    if not short:
        bottom.annotate(
            f"positions averaged in {MAX_CURVE_POINTS} bins",
            (0.01, 0.02),
            xycoords="axes fraction",
            fontsize=7,
        )
    return fig


# ---- trajectory: one model's checkpoints in training order ------------------------------------------------
def _step_axis(ax: Axes, steps: Sequence[int]) -> None:
    """A log step axis that keeps step 0: symmetric log, linear below the first positive step."""
    positive = [s for s in steps if s > 0]
    if positive and max(positive) / min(positive) >= 10:
        ax.set_xscale("symlog", linthresh=min(positive), linscale=0.5)
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, pos: f"{x:g}"))
        # no negative steps: the axis starts just left of 0 (or of the first step)
        ax.set_xlim(-0.5 * min(positive) if 0 in steps else 0.7 * min(positive), 1.4 * max(positive))
    ax.set_xlabel("training step (log scale; step 0 at the left)" if positive else "training step")


def trajectory_sink(
    steps: Sequence[int],
    by_eps: dict[str, Sequence[float]],
    title: str,
    onset: tuple[int, int | None] | None,
    headline: str,
) -> Figure:
    """Sink_1 at each ε against the training step, the headline ε bold, and the sink onset (the reproduce
    rule's: the first checkpoint with Sink_1 >= 5 % at the headline ε) marked; onset: (step, tokens)."""
    fig = figure((6.2, 3.6))
    ax = fig.subplots()
    cmap = _colormap("viridis")
    keys = sorted(by_eps, key=float)
    for i, eps in enumerate(keys):
        bold = eps == headline
        colour = "black" if bold else cmap(0.15 + 0.7 * i / max(1, len(keys) - 1))
        ax.plot(
            steps, by_eps[eps], marker="o", ms=3, lw=2.0 if bold else 1.0, color=colour, label=f"ε = {eps}"
        )
    ax.axhline(5.0, color="grey", ls=":", lw=0.8)
    if onset is not None:
        ax.axvline(onset[0], color="#cf222e", ls="--", lw=1)
        tokens = f"\n({onset[1] / 1e6:.1f}M tokens)" if onset[1] else ""
        ax.annotate(
            f"onset (ε = {headline}): step {onset[0]}{tokens}",
            (onset[0], 0.97),
            xycoords=("data", "axes fraction"),
            xytext=(5, 0),
            textcoords="offset points",
            fontsize=8,
            color="#cf222e",
            va="top",
        )
    _step_axis(ax, steps)
    ax.set(ylabel="Sink_1 (%)", ylim=(-2, 102))
    ax.set_title(wrap(title, 80), fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(alpha=0.3)
    return fig


def trajectory_layers(steps: Sequence[int], by_layer: np.ndarray, title: str) -> Figure:
    """Per-layer Sink_1 (%) over checkpoints: layers (from 0) as rows, checkpoints in training order as
    columns (labelled by step), one colour scale 0-100 %."""
    by_layer = np.asarray(by_layer, dtype=float)  # (layers, checkpoints)
    fig = figure((max(4.5, 0.35 * len(steps) + 2.5), max(2.6, 0.3 * by_layer.shape[0] + 1.6)))
    ax = fig.subplots()
    im = ax.imshow(by_layer, aspect="auto", cmap="viridis", vmin=0, vmax=100, origin="lower")
    every = max(1, len(steps) // 16)
    ax.set_xticks(range(0, len(steps), every), [str(s) for s in steps][::every], rotation=60, fontsize=7)
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="checkpoint (training step)", ylabel="layer (from 0)")
    ax.set_title(wrap(title, 80), fontsize=9, loc="left")
    fig.colorbar(im, ax=ax, label="Sink_1 (%)")
    return fig


def trajectory_ratio(steps: Sequence[int], ratio: Sequence[float | None], title: str) -> Figure:
    """The massive-activation ratio (max over blocks of ||h_1|| / mean_{t>1} ||h_t||) against the step."""
    fig = figure((6.2, 3.2))
    ax = fig.subplots()
    points = [(s, r) for s, r in zip(steps, ratio, strict=True) if r is not None]
    if points:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", ms=3, color="black")
    ax.axhline(1.0, color="grey", ls=":", lw=0.8)
    _step_axis(ax, steps)
    ax.set(ylabel="max over blocks of ‖h₁‖ / mean ‖h_t‖")
    ax.set_title(wrap(title, 80), fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    return fig
