"""What `sinklab measure --out DIR` writes: metrics.json, CSV tables, PNG plots; and the terminal summary."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from sinklab.io import atomic_write_bytes, atomic_write_json, atomic_write_text

PLOT_POSITIONS = 16


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_outputs(result: Any, out: Path, plots: bool = True) -> list[Path]:
    """metrics.json + CSVs (+ PNGs); returns the written paths.

    Everything is rendered in memory first and each file replaces its old version in one step
    (temporary file + os.replace), metrics.json last: an interrupted write leaves no partial file, and a
    metrics.json always comes with the tables and plots of its own run (or of an earlier complete one)."""
    files: list[tuple[str, str | bytes]] = []
    eps_keys = list(result.sink_percent_by_eps)
    rows = [["position", *[f"sink_percent_eps_{e}" for e in eps_keys]]]
    for k in range(result.length):
        rows.append([k + 1, *[result.sink_percent_by_eps[e][k] for e in eps_keys]])
    files.append(("sink_percent.csv", _csv(rows)))
    alpha = np.asarray(result.alpha)  # (L, H, T)
    rows = [["layer", "head", *[f"alpha_{k + 1}" for k in range(alpha.shape[2])]]]
    rows += [[l, h, *alpha[l, h].tolist()] for l in range(alpha.shape[0]) for h in range(alpha.shape[1])]
    files.append(("alpha.csv", _csv(rows)))
    by_layer = np.asarray(result.sink_percent_by_layer)
    rows = [["layer", *[f"sink_percent_{k + 1}" for k in range(by_layer.shape[1])]]]
    rows += [[l, *by_layer[l].tolist()] for l in range(by_layer.shape[0])]
    files.append(("sink_percent_by_layer.csv", _csv(rows)))
    rows = [["quantity", "layer", *[f"pos_{k + 1}" for k in range(result.length)]]]
    for name in ("hidden_norm", "key_norm", "value_norm", "query_norm", "cos_first_key", "cos_other_keys"):
        table = result.analyses.get(name)
        if table is not None:
            rows += [[name, l, *row] for l, row in enumerate(table)]
    if len(rows) > 1:
        files.append(("analyses.csv", _csv(rows)))
    if plots:
        files += _plots(result)
    written = []
    for name, data in files:
        write = atomic_write_bytes if isinstance(data, bytes) else atomic_write_text
        written.append(write(out / name, data))
    written.append(atomic_write_json(out / "metrics.json", result.to_dict()))
    return written


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _figure(figsize: tuple[float, float]) -> Any:
    """A figure with constrained layout, drawn by Agg: matplotlib.figure.Figure, not pyplot, so a run
    neither imports pyplot nor switches the caller's backend (a notebook's stays as it was), and no figure
    outlives its PNG. Constrained layout fits the labels in one draw (bbox_inches="tight" drew twice)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _log_axis_numbers(ax: Any) -> None:
    """Plain numbers (0.6, 2, 40) on a log y axis instead of 6 x 10^-1: easier to read, and no mathtext to
    typeset. Which ticks get a label is LogFormatter's choice (minor labels thin out over many decades)."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    ax.yaxis.set_major_formatter(PlainLogFormatter())
    ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


def _plots(result: Any) -> list[tuple[str, bytes]]:
    """(file name, PNG bytes) of each plot; layers and heads count from 0, positions from 1."""
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import MaxNLocator

    paths = []
    alpha = np.asarray(result.alpha)
    fig = _figure((max(4, alpha.shape[1] * 0.4 + 2), max(3, alpha.shape[0] * 0.3 + 1.5)))
    ax = fig.subplots()
    im = ax.imshow(alpha[:, :, 0], aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set(xlabel="head (from 0)", ylabel="layer (from 0)", title=r"first-token importance $\alpha_1$")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(im, ax=ax)
    paths.append(("alpha_first_heatmap.png", _png(fig)))

    n = min(PLOT_POSITIONS, result.length)
    fig = _figure((6, 3.2))
    ax = fig.subplots()
    keys = list(result.sink_percent_by_eps)
    width = 0.8 / len(keys)
    for i, e in enumerate(keys):
        ax.bar(
            np.arange(1, n + 1) + (i - (len(keys) - 1) / 2) * width,
            result.sink_percent_by_eps[e][:n],
            width=width,
            label=f"ε = {e}",
        )
    ax.set(xlabel="key position k", ylabel=r"Sink$_k^\epsilon$ (%)", ylim=(0, 100), title="Sink by position")
    ax.legend()
    paths.append(("sink_positions.png", _png(fig)))

    if result.head_map is not None and result.strongest_head is not None:
        fig = _figure((4.5, 4.2))
        ax = fig.subplots()
        masked = np.ma.masked_where(np.triu(np.ones_like(result.head_map), 1) > 0, result.head_map)
        n_pos = masked.shape[0]
        extent = (0.5, n_pos + 0.5, n_pos + 0.5, 0.5)  # positions from 1
        # nearest: each position a visible cell (smoothing would blur the one-key-wide sink column away).
        im = ax.imshow(masked, cmap="magma", vmin=0, vmax=1, extent=extent, interpolation="nearest")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        sh = result.strongest_head
        ax.set(
            xlabel="key position (from 1)",
            ylabel="query position (from 1)",
            title=f"mean map, layer {sh['layer']} head {sh['head']} (from 0)\n"
            f"positions 1-{n_pos} of {result.length}, {sh['map_samples']} samples",
        )
        fig.colorbar(im, ax=ax, label="attention weight")
        paths.append(("strongest_head_map.png", _png(fig)))

    norm_tables = [(k, result.analyses.get(k)) for k in ("hidden_norm", "key_norm", "value_norm")]
    norm_tables = [(k, np.asarray(t, dtype=float)) for k, t in norm_tables if t is not None]
    if norm_tables:
        fig = _figure((4.4 * len(norm_tables), 3.2))
        axes = fig.subplots(1, len(norm_tables), squeeze=False)[0]
        for ax, (name, table) in zip(axes, norm_tables, strict=True):
            # One line per layer, coloured by depth (a colorbar, not a legend of a dozen entries): one
            # LineCollection draws them all.
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
        paths.append(("norms.png", _png(fig)))
    return paths


def summary(result: Any) -> str:
    """A few lines for the terminal; layers and heads count from 0 (as in metrics.json and the CSVs),
    positions k from 1 (as in the paper's Sink_k)."""
    lines = [f"model: {result.model}   backend: {result.backend}   {result.dtype} on {result.device}"]
    lines.append(
        f"input: {result.input}   samples: {result.samples} of {result.requested_samples} asked   "
        f"length: {result.length}   skipped: {result.skipped}"
    )
    for e, values in result.sink_percent_by_eps.items():
        top = ", ".join(f"Sink_{k + 1}={values[k]:.2f}%" for k in range(min(4, len(values))))
        lines.append(f"ε = {e}: {top}   (% of heads with α_k > ε at position k, from 1)")
    lines.append(f"mean α_1 over layers and heads: {result.mean_first_alpha:.4f}")
    if result.strongest_head:
        sh = result.strongest_head
        lines.append(
            f"strongest first-token head: layer {sh['layer']} head {sh['head']} (α_1 = {sh['alpha_1']:.3f}; "
            "layers and heads count from 0)"
        )
    ratio = result.analyses.get("massive_activation_ratio")
    if ratio:
        finite = [(r, i) for i, r in enumerate(ratio) if r is not None]
        if finite:
            r, i = max(finite)
            lines.append(
                f"massive activation: ||h_1|| / mean ||h_t|| peaks at {r:.1f}x "
                f"(hidden state {i}: after {i} blocks, 0 = embeddings)"
            )
    if result.slot:
        lines.append(f"sink slot / sink logit: mean α = {result.slot['mean_alpha']:.4f}")
    lines += [f"note: {n}" for n in result.notes]
    if result.out:
        names = {Path(p).name for p in getattr(result, "written", [])}
        what = ["metrics.json"]
        if any(n.endswith(".csv") for n in names):
            what.append("CSV tables")
        if any(n.endswith(".png") for n in names):
            what.append("PNG plots")
        lines.append(f"wrote {' + '.join(what)} to {result.out}")
    return "\n".join(lines)
