"""`sinklab compare DIR...`: several measurements (metrics.json of `measure`, or a training run's) side by
side: one table and one figure overlaying Sink_k by position and Sink_1 by layer (model against model, T
against T)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sinklab.errors import SinklabError
from sinklab.measure.analysis import read_metrics

POSITIONS = 16  # Sink_k drawn for k = 1..16


def load(paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(label, metrics.json) of each folder or file; labels are the model's name and T (and the folder's name
    where two would read the same)."""
    from sinklab.measure.outputs import model_label

    found = []
    for p in paths:
        path = Path(p)
        file = path / "metrics.json" if path.is_dir() else path
        if not file.exists():
            raise SinklabError(
                f"{p}: no metrics.json there (a `sinklab measure --out` folder or a training run)"
            )
        data = read_metrics(file)
        found.append(
            (f"{model_label(data.get('model', file.parent.name))}, T={data.get('length')}", data, file)
        )
    labels = [label for label, _, _ in found]
    return [
        (f"{label} ({file.parent.name})" if labels.count(label) > 1 else label, data)
        for label, data, file in found
    ]


def table(measurements: list[tuple[str, dict[str, Any]]]) -> str:
    eps = {f"{float(d.get('epsilon', 0.3)):g}" for _, d in measurements}
    width = max(len(label) for label, _ in measurements)
    lines = [
        f"{'measurement'.ljust(width)}  {'n':>5}  {'ε':>4}  Sink_1   Sink_2   Sink_3   Sink_4   window Sink_1"
    ]
    for label, d in measurements:
        sink = d["sink_percent"]
        window = (d.get("window") or {}).get("sink_percent") or d.get("sink_percent_window")
        cells = "  ".join(f"{sink[k]:6.2f}%" if k < len(sink) else "       " for k in range(4))
        lines.append(
            f"{label.ljust(width)}  {d.get('samples', 0):>5}  {float(d.get('epsilon', 0.3)):>4g}  {cells}  "
            + (f"{window[0]:6.2f}%" if window else "")
        )
    if len(eps) > 1:
        lines.append(f"note: the measurements use different headline ε ({', '.join(sorted(eps))})")
    return "\n".join(lines)


def figure(measurements: list[tuple[str, dict[str, Any]]]) -> Any:
    """Two panels: Sink_k by key position (k = 1..16), Sink_1 by layer (depth as a fraction, so models of
    different depth overlay)."""
    from sinklab.plots import figure as new_figure

    fig = new_figure((10, 3.6))
    left, right = fig.subplots(1, 2)
    for label, d in measurements:
        sink = np.asarray(d["sink_percent"][:POSITIONS], dtype=float)
        left.plot(np.arange(1, len(sink) + 1), sink, marker="o", ms=3, label=label)
        by_layer = np.asarray(d.get("sink_percent_by_layer") or [[0.0]], dtype=float)[:, 0]
        depth = (np.arange(len(by_layer)) + 1) / len(by_layer)
        right.plot(depth, by_layer, marker="o", ms=3, label=label)
    left.set(xlabel="key position k (from 1)", ylabel="Sink_k (%)", ylim=(0, 105), title="Sink_k by position")
    right.set(
        xlabel="layer depth (layer + 1) / L", ylabel="Sink_1 (%)", ylim=(0, 105), title="Sink_1 by layer"
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=7, frameon=False)
    return fig


def compare(paths: list[str], out: str | None = None) -> str:
    """The comparison table (returned); with `out`, compare.png and compare.csv written there."""
    if len(paths) < 1:
        raise SinklabError("compare needs at least one measurement folder")
    measurements = load(paths)
    text = table(measurements)
    if out is not None:
        from sinklab.io import atomic_write_files, csv_text
        from sinklab.plots import png_bytes

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        rows: list[list[Any]] = [["measurement", "samples", "epsilon", *[f"sink_{k}" for k in range(1, 5)]]]
        for label, d in measurements:
            rows.append([label, d.get("samples"), d.get("epsilon"), *d["sink_percent"][:4]])
        atomic_write_files(
            folder, [("compare.csv", csv_text(rows)), ("compare.png", png_bytes(figure(measurements)))]
        )
        text += f"\nwrote compare.png and compare.csv to {out}"
    return text
