"""What `sinklab measure --out DIR` writes: metrics.json, CSV tables, PNG plots; and the terminal summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sinklab.io import atomic_write_files, atomic_write_json, csv_text
from sinklab.measure.inputs import first_token_line
from sinklab.measure.massive import massive_line
from sinklab.measure.sweep import sweep_line
from sinklab.measure.windows import window_line
from sinklab.plots import (
    alpha_heatmap,
    attention_map,
    length_curves,
    norm_panels,
    png_bytes,
    sink_by_position,
)

PLOT_POSITIONS = 16


def write_outputs(result: Any, out: Path, plots: bool = True) -> list[Path]:
    """metrics.json + CSVs (+ PNGs); returns the written paths.

    Everything is rendered in memory first and each file replaces its old version in one step
    (temporary file + os.replace), metrics.json last: an interrupted write leaves no partial file, and a
    metrics.json always comes with the tables and plots of its own run (or of an earlier complete one)."""
    files: list[tuple[str, str | bytes]] = []
    document = result.to_dict()  # the JSON form: string ε keys, NaN as null
    by_eps = document["sink_percent_by_eps"]
    eps_keys = list(by_eps)
    rows = [["position", *[f"sink_percent_eps_{e}" for e in eps_keys]]]
    for k in range(len(by_eps[eps_keys[0]])):  # T positions, or K with --positions
        rows.append([k + 1, *[by_eps[e][k] for e in eps_keys]])
    files.append(("sink_percent.csv", csv_text(rows)))
    alpha = np.asarray(result.alpha)  # (L, H, T)
    rows = [["layer", "head", *[f"alpha_{k + 1}" for k in range(alpha.shape[2])]]]
    rows += [[l, h, *alpha[l, h].tolist()] for l in range(alpha.shape[0]) for h in range(alpha.shape[1])]
    files.append(("alpha.csv", csv_text(rows)))
    by_layer = np.asarray(result.sink_percent_by_layer)
    rows = [["layer", *[f"sink_percent_{k + 1}" for k in range(by_layer.shape[1])]]]
    rows += [[l, *by_layer[l].tolist()] for l in range(by_layer.shape[0])]
    files.append(("sink_percent_by_layer.csv", csv_text(rows)))
    rows = [["quantity", "layer", *[f"pos_{k + 1}" for k in range(result.length)]]]
    for name in ("hidden_norm", "key_norm", "value_norm", "query_norm", "cos_first_key", "cos_other_keys"):
        table = document.get("analyses", {}).get(name)
        if table is not None:
            rows += [[name, l, *row] for l, row in enumerate(table)]
    if len(rows) > 1:
        files.append(("analyses.csv", csv_text(rows)))
    images = _plots(result) if plots else []
    files += images
    files.append(("report.html", report_html(result, dict(images))))
    written = atomic_write_files(out, files)
    written.append(atomic_write_json(out / "metrics.json", document))
    return written


def head_map_title(result: Any, name: str = "") -> str:
    """The strongest head's map title: which head (from 0), which positions and how many samples."""
    sh = result.strongest_head
    n_pos = len(result.head_map)
    return (
        f"{name}{': ' if name else ''}mean map, layer {sh['layer']} head {sh['head']} (from 0)\n"
        f"positions 1-{n_pos} of {result.length}, {sh['map_samples']} samples"
    )


# plot kind (result.plot) -> file name
FIGURE_KINDS = {
    "alpha": "alpha_first_heatmap.png",
    "sink": "sink_positions.png",
    "map": "strongest_head_map.png",
    "norms": "norms.png",
    "length": "sink_by_length.png",
}


def model_label(name: str) -> str:
    """A model's name for titles, never a path: a hub id as it is, a folder by its name (a sinklab run's
    model/ or checkpoint folder by its run's)."""
    text = str(name)
    path = Path(text).expanduser()
    looks_local = text.startswith(("/", ".", "~")) or path.exists()
    if not looks_local:
        return text
    parts = [p for p in path.parts if p not in ("/", "")]
    while len(parts) > 1 and (parts[-1] in ("model", "final") or parts[-1].startswith("checkpoint")):
        parts.pop()
    return parts[-1] if parts else text


def provenance(result: Any) -> str:
    """The line every figure carries: model name, T, n and ε."""
    return (
        f"{model_label(result.model)}  ·  T = {result.length}, n = {result.samples}, ε = {result.epsilon:g}"
    )


def figures(result: Any, only: str | None = None) -> dict[str, Any]:
    """{file name: matplotlib Figure} of each plot (`only`: just that one); layers and heads count from 0,
    positions from 1; each titled with the model's name, T, n and ε."""
    made: dict[str, Any] = {}

    def want(name: str) -> bool:
        return only is None or name == only

    where = provenance(result)
    if want("alpha_first_heatmap.png"):
        window = getattr(result, "window", None)
        marks = {i: f"w={window['layers'][i]}" for i in window["windowed_layers"]} if window else None
        title = f"{where}\nfirst-token importance α₁ by layer and head"
        made["alpha_first_heatmap.png"] = alpha_heatmap(np.asarray(result.alpha)[:, :, 0], title, marks=marks)
    if want("sink_positions.png"):
        n = min(PLOT_POSITIONS, result.length)
        by_eps = {f"{float(e):g}": values[:n] for e, values in result.sink_percent_by_eps.items()}
        fig = sink_by_position(by_eps)
        fig.axes[0].set_title(f"{where}\nSink_k by key position", fontsize=9)
        made["sink_positions.png"] = fig
    if want("strongest_head_map.png") and result.head_map is not None and result.strongest_head is not None:
        made["strongest_head_map.png"] = attention_map(
            np.asarray(result.head_map), head_map_title(result, model_label(result.model))
        )
    sweep = getattr(result, "length_sweep", None)
    if want("sink_by_length.png") and sweep:
        curves = {
            e: [[(float(t), v[0]) for t, v in zip(sweep["lengths"], values, strict=True)]]
            for e, values in sweep["sink_percent_by_eps"].items()
        }
        made["sink_by_length.png"] = length_curves(
            curves, f"{model_label(result.model)}  ·  n = {result.samples}: Sink_1 against the input length"
        )
    if want("norms.png"):
        norms = {
            name: np.asarray(table, dtype=float)
            for name in ("hidden_norm", "key_norm", "value_norm")
            if (table := result.analyses.get(name)) is not None
        }
        if norms:
            fig = norm_panels(norms)
            fig.suptitle(where, fontsize=9)
            made["norms.png"] = fig
    return made


def _plots(result: Any) -> list[tuple[str, bytes]]:
    """(file name, PNG bytes) of each plot."""
    return [(name, png_bytes(fig)) for name, fig in figures(result).items()]


CAPTIONS = {
    "alpha_first_heatmap.png": "α₁ by layer and head (windowed layers marked at the right)",
    "sink_positions.png": "Sink_k by key position, one bar per ε",
    "strongest_head_map.png": "the strongest first-token head's mean attention map (dark: more weight)",
    "norms.png": "norms by position, one line per layer",
    "sink_by_length.png": "Sink_1 against the input length T (the paper's Fig. 3), from one forward",
}


def report_html(result: Any, figures_png: dict[str, bytes]) -> str:
    """report.html: one page with the headline table, the summary's lines and the figures embedded, through
    the one report writer (sinklab.reports.render)."""
    from sinklab.plots import png_data_uri
    from sinklab.reports import render

    by_eps = {f"{float(e):g}": v for e, v in result.sink_percent_by_eps.items()}
    window = result.window
    if window:
        window = {
            **window,
            "sink_percent_by_eps": {f"{float(e):g}": v for e, v in window["sink_percent_by_eps"].items()},
        }
    lines = [x for x in summary(result).splitlines()[2:] if not x.startswith(("ε = ", "wrote "))]
    return render(
        "sinklab.measure",
        "report.html.j2",
        r=result,
        label=model_label(result.model),
        by_eps=by_eps,
        window=window,
        positions=min(4, len(result.sink_percent)),
        lines=lines,
        images={name: png_data_uri(data) for name, data in figures_png.items()},
        captions=CAPTIONS,
    )


def summary_html(result: Any) -> str:
    """A short HTML summary for a notebook (MeasureResult._repr_html_): the summary's lines, escaped."""
    import html

    rows = "".join(f"<li>{html.escape(line)}</li>" for line in summary(result).splitlines()[1:])
    return (
        f"<div><b>sinklab measure</b>: {html.escape(model_label(result.model))} "
        f"(T = {result.length}, n = {result.samples})<ul style='margin:2px 0'>{rows}</ul></div>"
    )


def summary(result: Any) -> str:
    """A few lines for the terminal; layers and heads count from 0 (as in metrics.json and the CSVs),
    positions k from 1 (as in the paper's Sink_k)."""
    lines = [f"model: {result.model}   backend: {result.backend}   {result.dtype} on {result.device}"]
    lines.append(
        f"input: {result.input}   samples: {result.samples} of {result.requested_samples} asked   "
        f"length: {result.length}   skipped: {result.skipped}"
    )
    if getattr(result, "first_token", None):
        lines.append(first_token_line(result.first_token))
    for e, values in result.sink_percent_by_eps.items():
        top = ", ".join(f"Sink_{k + 1}={values[k]:.2f}%" for k in range(min(4, len(values))))
        lines.append(f"ε = {float(e):g}: {top}   (% of heads with α_k > ε at position k, from 1)")
    lines.append(f"mean α_1 over layers and heads: {result.mean_first_alpha:.4f}")
    if getattr(result, "window", None):
        lines.append(window_line(result.window, result.sink_percent[0], result.epsilon))
    if getattr(result, "length_sweep", None):
        lines.append(sweep_line(result.length_sweep, result.epsilon))
    if result.strongest_head:
        sh = result.strongest_head
        lines.append(
            f"strongest first-token head: layer {sh['layer']} head {sh['head']} (α_1 = {sh['alpha_1']:.3f}; "
            "layers and heads count from 0)"
        )
    massive = result.analyses.get("massive")
    if massive:
        lines.append("massive activation: " + massive_line(massive))
    ratio = result.analyses.get("massive_activation_ratio")
    if ratio is not None and len(ratio):
        finite = [(float(r), i) for i, r in enumerate(ratio) if r is not None and np.isfinite(r)]
        if finite:
            r, i = max(finite)
            lines.append(
                f"first-token norm: ||h_1|| / mean ||h_t|| peaks at {r:.1f}x "
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
        if "report.html" in names:
            what.append("report.html")
        lines.append(f"wrote {' + '.join(what)} to {result.out}")
    return "\n".join(lines)
