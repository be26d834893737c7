"""`sinklab report RUN` on one training run: Sink_k against steps and tokens, the losses, and the final
α₁ map and Sink_k by position, on one page (RUN/report.html, figures embedded) through the report writer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sinklab.errors import SinklabError


def is_run(path: Path) -> bool:
    """A `sinklab train` run directory (its config and log), not a reproduce directory."""
    return (path / "config.json").is_file() and (path / "log.jsonl").is_file()


def _history(run: Path) -> list[dict[str, Any]]:
    lines = []
    for line in (run / "log.jsonl").read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            lines.append(record)
    return lines


def _lines(series: dict[str, list[tuple[float, float]]], ylabel: str, title: str) -> Any:
    from sinklab.plots import figure

    fig = figure((5.5, 3.2))
    ax = fig.subplots()
    for label, points in series.items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker=".", label=label)
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if any(series.values()):
        ax.legend(fontsize=7)
    return fig


def figures(run: Path) -> dict[str, Any]:
    import numpy as np

    from sinklab import plots
    from sinklab.measure.analysis import read_metrics

    history = _history(run)
    if not history:
        raise SinklabError(
            f"{run}: log.jsonl has no evaluation yet; run `sinklab report` after the first one"
        )
    name = run.name
    made: dict[str, Any] = {}
    seeds = [[(h["step"], h.get("tokens", 0), h["sink_1"]) for h in history if h.get("sink_1") is not None]]
    made["sink_by_step.png"] = plots.onset_curve(seeds, f"{name}: Sink_1 (ε headline) against training", None)
    made["sink_k_by_step.png"] = _lines(
        {
            f"Sink_{k + 1}": [
                (h["step"], h["sink_percent"][k]) for h in history if len(h.get("sink_percent") or []) > k
            ]
            for k in range(4)
        },
        "Sink_k (%)",
        f"{name}: Sink_k at the headline ε, k = 1..4",
    )
    made["loss_by_step.png"] = _lines(
        {
            key: [(h["step"], h[key]) for h in history if isinstance(h.get(key), int | float)]
            for key in ("val_loss", "train_loss")
        },
        "loss (nats)",
        f"{name}: loss",
    )
    metrics = run / "metrics.json"
    if metrics.exists():
        data = read_metrics(metrics)
        alpha = np.asarray(data["alpha"], dtype=float)
        made["alpha_first_heatmap.png"] = plots.alpha_heatmap(alpha[:, :, 0], f"{name}: final α₁")
        made["sink_positions.png"] = plots.sink_by_position(
            {k: v[:16] for k, v in data["sink_percent_by_eps"].items()}
        )
    return made


def write_run_report(run: Path) -> tuple[Path, str]:
    """RUN/report.html and the summary line; every figure embedded."""
    from sinklab.io import atomic_write_text
    from sinklab.plots import png_bytes, png_data_uri
    from sinklab.reports import render

    history = _history(run)
    made = figures(run)
    last = history[-1]
    line = (
        f"{run.name}: step {last['step']}, {last.get('tokens', 0) / 1e6:.2f}M tokens, "
        f"val loss {last.get('val_loss', float('nan')):.4f}, Sink_1 {last.get('sink_1', float('nan')):.2f}%"
    )
    html = render(
        "sinklab.experiments",
        "run.html.j2",
        name=run.name,
        line=line,
        history=history,
        images={name: png_data_uri(png_bytes(fig)) for name, fig in made.items()},
    )
    out = run / "report.html"
    atomic_write_text(out, html)
    return out, line
