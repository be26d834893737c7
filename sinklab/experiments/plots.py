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
