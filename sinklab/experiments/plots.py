"""Plots shared by the demo and the reproduce report (matplotlib, written atomically as PNG)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sinklab.io import atomic_write


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path) -> Path:
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))
    _plt().close(fig)
    return path


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def sink_bars(runs: dict[str, Sequence[float]], positions: int, title: str, path: Path) -> Path:
    """Grouped bars of Sink_k (k = 1..positions) for each run."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(runs) * max(1, positions / 2) + 2), 3.2))
    width = 0.8 / positions
    x = np.arange(len(runs))
    for k in range(positions):
        ax.bar(
            x + (k - (positions - 1) / 2) * width, [v[k] for v in runs.values()], width, label=f"Sink_{k + 1}"
        )
    ax.set_xticks(x, list(runs), rotation=30, ha="right")
    ax.set(ylabel="Sink (%)", ylim=(0, 100), title=title)
    if positions > 1:
        ax.legend(fontsize=7)
    return save_png(fig, path)


def curves(
    histories: dict[str, list[dict[str, Any]]],
    value: Callable[[dict[str, Any]], float | None],
    ylabel: str,
    title: str,
    path: Path,
    x_key: str = "step",
    log_y: bool = False,
) -> Path:
    """One line per run of `value(log line)` against steps (lines without the value are left out)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
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
    return save_png(fig, path)


def heatmap(matrix: np.ndarray, title: str, path: Path, xlabel: str = "head", ylabel: str = "layer") -> Path:
    plt = _plt()
    rows, cols = matrix.shape
    fig, ax = plt.subplots(figsize=(max(3.5, cols * 0.45 + 1.8), max(2.8, rows * 0.4 + 1.2)))
    im = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    for i in range(rows):
        for j in range(cols):
            ax.text(
                j,
                i,
                f"{matrix[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if matrix[i, j] < 0.6 else "black",
            )
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xticks=range(cols), yticks=range(rows))
    fig.colorbar(im, ax=ax)
    return save_png(fig, path)


def attention_map(weights: np.ndarray, title: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    masked = np.ma.masked_where(np.triu(np.ones_like(weights), 1) > 0, weights)
    im = ax.imshow(masked, cmap="magma", vmin=0, vmax=max(1e-6, float(weights.max())))
    ax.set(xlabel="key position", ylabel="query position", title=title)
    fig.colorbar(im, ax=ax)
    return save_png(fig, path)


def _band(ax: Any, seeds: list[list[tuple[float, float]]], colour: Any, label: str, width: float) -> None:
    """Mean over seeds as a line, min-max over seeds as a band (steps every seed logged)."""
    common = sorted(set.intersection(*(set(x for x, _ in s) for s in seeds))) if seeds else []
    if not common:
        return
    rows = np.array([[dict(s)[x] for x in common] for s in seeds])
    ax.plot(common, rows.mean(0), color=colour, lw=width, label=label)
    if len(seeds) > 1:
        ax.fill_between(common, rows.min(0), rows.max(0), color=colour, alpha=0.18, lw=0)


def claim_figure(
    values: dict[str, list[float]],
    curves_by_run: dict[str, list[list[tuple[float, float]]]],
    ylabel: str,
    title: str,
    path: Path,
    highlight: str = "default",
    paper: dict[str, float] | None = None,
) -> Path:
    """Left: each run's seed mean (bar) with every seed as a point, and the paper's number beside it (hatched
    bar); right: Sink_1 against steps, the seed mean as a line and the seeds' min-max as a band, `highlight`
    in black."""
    plt = _plt()
    paper = paper or {}
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(9.5, 3.6), layout="constrained", gridspec_kw={"width_ratios": [1.2, 1]}
    )
    names = list(values)
    x = np.arange(len(names))
    colours = {n: ("black" if n == highlight else plt.cm.tab10(i % 10)) for i, n in enumerate(names)}
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
    top = max([*(max(v) for v in values.values() if v), *paper.values(), 5.0])
    left.set(ylabel=ylabel, ylim=(0, top * 1.15))
    left.set_title(title, fontsize=9, loc="left")
    left.grid(axis="y", alpha=0.3)
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=3, frameon=False)
    for name, seeds in curves_by_run.items():
        _band(right, seeds, colours.get(name, "grey"), name, 2.0 if name == highlight else 1.0)
    right.set(xlabel="training step", ylabel="Sink_1 (%)", ylim=(0, None))
    right.grid(alpha=0.3)
    if curves_by_run:
        right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_png(fig, path)


def suite_curves(
    suites: dict[str, dict[str, list[list[tuple[float, float]]]]],
    path: Path,
    highlight: str = "default",
    onset: float | None = None,
) -> Path:
    """Small multiples, one panel per suite: Sink_1 against steps for its runs (seed mean; the default in
    black with its seed band), the default's sink onset as a dashed line."""
    plt = _plt()
    cols = min(3, max(1, len(suites)))
    rows = (len(suites) + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.0 * rows), layout="constrained", squeeze=False, sharey=True
    )
    for ax, (suite, runs) in zip(axes.flat, suites.items(), strict=False):
        for name in runs:  # every other run faded: the panel is about the default and the spread around it
            if name != highlight:
                _band(ax, runs[name], (0.45, 0.55, 0.75, 0.6), name, 0.8)
        if highlight in runs:
            _band(ax, runs[highlight], "black", highlight, 2.0)
        if onset is not None:
            ax.axvline(onset, color="black", ls="--", lw=0.8)
        ax.set_title(f"{suite} ({len(runs)} runs)", fontsize=9)
        ax.set(xlabel="training step", ylabel="Sink_1 (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(suites) :]:
        ax.axis("off")
    return save_png(fig, path)


def onset_curve(
    seeds: list[list[tuple[float, float, float]]],
    title: str,
    path: Path,
    onset: tuple[int, int] | None,
) -> Path:
    """The default run's Sink_1 against steps (bottom axis) and tokens (top axis): the seed mean, each seed
    faded, and the sink onset (first evaluation with seed-mean Sink_1 >= 5 %) marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.4), layout="constrained")
    for run in seeds:
        ax.plot([s for s, _, _ in run], [v for _, _, v in run], color="grey", lw=0.8, alpha=0.6)
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
    ax.set(xlabel="training step", ylabel="Sink_1 (%)", title=title)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def length_curves(by_eps: dict[str, list[list[tuple[float, float]]]], title: str, path: Path) -> Path:
    """The paper's Fig. 3 shape: Sink_1 against the evaluation length T (log scale), one line per ε (seed
    mean, min-max over seeds as a band)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.4), layout="constrained")
    for i, (eps, seeds) in enumerate(by_eps.items()):
        _band(ax, seeds, plt.cm.viridis(i / max(1, len(by_eps) - 1)), f"ε = {eps}", 1.6)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="evaluation length T (tokens)", ylabel="Sink_1 (%)", ylim=(0, 105))
    ax.set_title(title, fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return save_png(fig, path)
