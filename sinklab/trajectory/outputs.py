"""What `sinklab trajectory` writes beside the checkpoints' own metrics.json: trajectory.json (one entry per
checkpoint: step, tokens and its metrics.json document), trajectory.csv, three figures and report.html.

The sink onset is the reproduce rule's own (sinklab.experiments.claims.rule.onset: the first evaluation with
Sink_1 >= SINK_PRESENT), read over the checkpoints as one run's log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sinklab.io import atomic_write_files, atomic_write_json, csv_text
from sinklab.measure.config import MeasureConfig

SCHEMA = 1  # trajectory.json format version
FIGURES = {
    "trajectory_sink.png": "Sink_1 at each ε against the training step (log axis; step 0 at the left), the "
    "reproduce rule's onset marked",
    "trajectory_layers.png": "Sink_1 per layer (from 0) at each checkpoint, headline ε",
    "trajectory_massive.png": "the massive-activation ratio: max over blocks of ‖h₁‖ / mean ‖h_t‖",
}


def onset(entries: list[dict[str, Any]], eps: str) -> dict[str, Any] | None:
    """The rule's sink onset over the checkpoints at threshold `eps`: {step, tokens}, or None (no sink)."""
    from sinklab.experiments.claims import rule
    from sinklab.experiments.claims.results import Run, RunResult

    history = [
        {
            "step": e["step"],
            "tokens": e["tokens"] or 0,
            "sink_percent": e["metrics"]["sink_percent_by_eps"][eps],
        }
        for e in entries
    ]
    last = history[-1]["sink_percent"] if history else [0.0]
    found = rule.onset(Run("trajectory", [RunResult("trajectory", last, None, history=history)]))
    if found is None:
        return None
    return {"step": found.step, "tokens": found.tokens or None, "threshold_percent": rule.SINK_PRESENT}


def massive_ratio(metrics: dict[str, Any]) -> float | None:
    """max over blocks (not the embedding) of ||h_1|| / mean_{t>1} ||h_t||, the paper's massive activation."""
    ratios = (metrics.get("analyses") or {}).get("massive_activation_ratio") or []
    values = [r for r in ratios[1:] if r is not None]
    return max(values) if values else None


def document(result: Any, cfg: MeasureConfig, tokens_per_step: int | None) -> dict[str, Any]:
    entries = [
        {
            "label": m.checkpoint.label,
            "source": m.checkpoint.source,
            "step": m.checkpoint.step,
            "tokens": m.checkpoint.tokens,
            "metrics": m.metrics,
        }
        for m in result.checkpoints
    ]
    eps_keys = [f"{float(e):g}" for e in cfg.eps]
    return {
        "schema": SCHEMA,
        "input": result.input,
        "ids": "ids.jsonl",
        "length": cfg.length,
        "samples": entries[0]["metrics"]["samples"] if entries else cfg.samples,
        "epsilon": float(cfg.eps[0]),
        "eps": [float(e) for e in cfg.eps],
        "positions": cfg.positions,
        "tokens_per_step": tokens_per_step,
        "onset": {e: onset(entries, e) for e in eps_keys},
        "checkpoints": entries,
    }


def csv_rows(doc: dict[str, Any]) -> list[list[Any]]:
    eps_keys = [f"{e:g}" for e in doc["eps"]]
    n = len(doc["checkpoints"][0]["metrics"]["sink_percent"]) if doc["checkpoints"] else 0
    head = ["label", "step", "tokens", "source"]
    head += [f"sink_{k + 1}_eps_{e}" for e in eps_keys for k in range(n)]
    head += ["mean_alpha_1", "massive_activation_ratio"]
    rows = [head]
    for entry in doc["checkpoints"]:
        m = entry["metrics"]
        row = [entry["label"], entry["step"], entry["tokens"], entry["source"]]
        row += [m["sink_percent_by_eps"][e][k] for e in eps_keys for k in range(n)]
        rows.append([*row, m["mean_first_alpha"], massive_ratio(m)])
    return rows


def series_name(doc: dict[str, Any]) -> str:
    """The series' name for titles, never a machine path: a hub id, or the folder above the checkpoints."""
    from sinklab.measure.outputs import model_label

    first = doc["checkpoints"][0]["source"] if doc["checkpoints"] else ""
    if "@" in first and not Path(first).exists():
        return first.split("@", 1)[0]
    parent = Path(first).parent
    if parent.name == "checkpoints":
        parent = parent.parent
    return model_label(str(parent)) if str(parent) not in ("", ".") else model_label(first)


def figures(doc: dict[str, Any]) -> dict[str, Any]:
    from sinklab import plots

    steps = [e["step"] for e in doc["checkpoints"]]
    head = f"{doc['epsilon']:g}"
    where = f"{series_name(doc)}  ·  T = {doc['length']}, n = {doc['samples']}, {len(steps)} checkpoints"
    by_eps = {
        f"{e:g}": [c["metrics"]["sink_percent_by_eps"][f"{e:g}"][0] for c in doc["checkpoints"]]
        for e in doc["eps"]
    }
    on = doc["onset"].get(head)
    made = {
        "trajectory_sink.png": plots.trajectory_sink(
            steps,
            by_eps,
            f"{where}\nSink_1 during pre-training",
            (on["step"], on["tokens"]) if on else None,
            head,
        )
    }
    by_layer = np.array(
        [[row[0] for row in c["metrics"]["sink_percent_by_layer"]] for c in doc["checkpoints"]]
    )
    made["trajectory_layers.png"] = plots.trajectory_layers(
        steps, by_layer.T, f"{where}\nSink_1 per layer (ε = {head})"
    )
    ratios = [massive_ratio(c["metrics"]) for c in doc["checkpoints"]]
    if any(r is not None for r in ratios):
        made["trajectory_massive.png"] = plots.trajectory_ratio(
            steps, ratios, f"{where}\nmassive activation of the first token"
        )
    return made


def report_html(doc: dict[str, Any], images: dict[str, bytes], notes: list[str]) -> str:
    from sinklab.plots import png_data_uri
    from sinklab.reports import render

    head = f"{doc['epsilon']:g}"
    rows = [
        {
            "step": c["step"],
            "tokens": c["tokens"],
            "source": c["source"],
            "sink": c["metrics"]["sink_percent_by_eps"][head][: min(4, len(c["metrics"]["sink_percent"]))],
            "ratio": massive_ratio(c["metrics"]),
        }
        for c in doc["checkpoints"]
    ]
    return render(
        "sinklab.trajectory",
        "report.html.j2",
        doc=doc,
        name=series_name(doc),
        head=head,
        rows=rows,
        positions=len(rows[0]["sink"]) if rows else 0,
        onset=doc["onset"].get(head),
        images={name: png_data_uri(data) for name, data in images.items()},
        captions=FIGURES,
        notes=notes,
    )


def write_outputs(
    result: Any, cfg: MeasureConfig, tokens_per_step: int | None, plots: bool = True
) -> list[Path]:
    """trajectory.json, trajectory.csv (and the figures and report.html): each file atomically,
    trajectory.json last."""
    from sinklab.measure.analysis import jsonable
    from sinklab.plots import png_bytes

    doc = jsonable(document(result, cfg, tokens_per_step))
    notes = sorted({n for c in doc["checkpoints"] for n in c["metrics"].get("notes", [])})
    files: list[tuple[str, str | bytes]] = [("trajectory.csv", csv_text(csv_rows(doc)))]
    if plots and doc["checkpoints"]:
        images = {name: png_bytes(fig) for name, fig in figures(doc).items()}
        files += list(images.items())
        files.append(("report.html", report_html(doc, images, notes)))
    written = atomic_write_files(result.out, files)
    written.append(atomic_write_json(result.out / "trajectory.json", doc))
    result.notes = notes
    return written


def summary(result: Any) -> str:
    """The terminal's lines: how many were measured now, Sink_1 by step, the onset, where it was written."""
    import json

    doc = json.loads((result.out / "trajectory.json").read_text())
    head = f"{doc['epsilon']:g}"
    lines = [
        f"trajectory of {series_name(doc)}: {len(doc['checkpoints'])} checkpoints, "
        f"{result.measured_now} measured now; input {doc['input']}, T = {doc['length']}, n = {doc['samples']}"
    ]
    cells = ", ".join(
        f"{c['step']}: {c['metrics']['sink_percent_by_eps'][head][0]:.1f}%" for c in doc["checkpoints"]
    )
    lines.append(f"Sink_1 (ε = {head}) by step: {cells}")
    on = doc["onset"].get(head)
    lines.append(
        f"sink onset (first checkpoint with Sink_1 >= 5 %): step {on['step']}"
        + (f" ({on['tokens'] / 1e6:.1f}M tokens)" if on and on["tokens"] else "")
        if on
        else "no sink onset: no checkpoint reaches Sink_1 >= 5 %"
    )
    lines += [f"note: {n}" for n in result.notes]
    extra = ", figures, report.html" if len(result.written) > 3 else ""
    lines.append(f"wrote trajectory.json, trajectory.csv{extra} to {result.out}")
    return "\n".join(lines)
