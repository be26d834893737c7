"""What `sinklab ablate --out DIR` writes: ablations.json, ablations.csv, loss_by_position.csv, two figures
and report.html (figures embedded); and the terminal summary.

Everything is rendered in memory, then each file replaces its old version in one step, ablations.json last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sinklab.io import atomic_write_files, atomic_write_json, csv_text
from sinklab.measure.inputs import first_token_line
from sinklab.measure.massive import massive_line
from sinklab.plots import ablation_deltas, png_bytes, png_data_uri, window_losses
from sinklab.reports import render

BAR_FIGURE = "delta_loss.png"
WINDOW_FIGURE = "window_loss.png"


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def top_text(row: Any) -> str:
    """Where the sink is: "Sink_2=74.00%" (the largest Sink_k at the headline ε), or "" if none."""
    top = getattr(row, "sink_top", None)
    return f"Sink_{top['k']}={top['percent']:.2f}%" if top else ""


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
        "largest_sink_k",
        f"largest_sink_percent_eps_{eps}",
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
                r.sink_top["k"] if r.sink_top else "",
                _fmt(r.sink_top["percent"], 2) if r.sink_top else "",
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
        ("ablations.csv", csv_text(table_rows(result))),
        ("loss_by_position.csv", csv_text(position_rows(result))),
    ]
    images: dict[str, bytes] = {}
    if plots:
        images = {name: png_bytes(fig) for name, fig in figures(result).items()}
        files += list(images.items())
    files.append(("report.html", report_html(result, images)))
    written = atomic_write_files(out, files)
    written.append(atomic_write_json(out / "ablations.json", result.to_dict()))
    return written


def figures(result: Any) -> dict[str, Any]:
    """{file name: matplotlib Figure}: the Δ-loss bars, and the loss by position of the window rows; titled
    with the model's name (never a path), T, n and ε."""
    from sinklab.measure.outputs import model_label

    title = (
        f"{model_label(result.model)}: unablated loss {result.baseline.loss:.3f}  ·  T = {result.length}, "
        f"n = {result.samples}, ε = {result.epsilon:g}"
    )
    made = {BAR_FIGURE: ablation_deltas(result.rows, title)}
    windowed = [r for r in result.rows if r.ablation in ("window", "window+sinks") and r.status == "ok"]
    if windowed:
        window = windowed[0].params["window"]
        made[WINDOW_FIGURE] = window_losses(result.baseline, windowed, window)
    return made


# ---- the HTML page -------------------------------------------------------------------------------------
def report_html(result: Any, figures: dict[str, bytes]) -> str:
    images = {name: png_data_uri(data) for name, data in figures.items()}
    return render(
        "sinklab.ablate",
        "report.html.j2",
        r=result,
        eps=f"{result.epsilon:g}",
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
    if getattr(result, "first_token", None):
        lines.append(first_token_line(result.first_token))
    width = max(len(r.label) for r in [result.baseline, *result.rows])
    lines.append(
        f"{'ablation'.ljust(width)}  {'loss':>8}  {'ppl':>9}  {'Δ loss [95% interval]':<30}  Sink_1   "
        "largest Sink_k"
    )
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
        sink = f"{r.sink_percent[eps][0]:6.2f}%  {top_text(r)}"
        if r.sink_percent_window:
            sink += f" (window-normalised α: {r.sink_percent_window[eps][0]:.2f}%)"
        lines.append(f"{r.label.ljust(width)}  {r.loss:8.4f}  {r.perplexity:9.3f}  {delta:<30}  {sink}")
    if result.massive:
        m = result.massive
        lines.append(f"massive activation: {massive_line(m)}")
        if m.get("layer") is not None:
            lines.append(
                f"massive-* rows act on dims {m['dims']} at block {m['layer']} (from 0), "
                f"{', '.join(f'{x:.0f}x' for x in m['ratios'][:4])} the median |h| there"
            )
    if result.streaming_llm:
        s = result.streaming_llm
        lines.append(f"StreamingLLM effect: {s['verdict']} ({s['why']})")
    lines.append(
        f"Sink_1 at ε = {eps}, in % of (sample, layer, head); largest Sink_k: where the sink is after the "
        "ablation (k from 1); layers and heads count from 0"
    )
    lines += [f"note: {n}" for n in result.notes]
    if result.out:
        lines.append(f"wrote ablations.json, CSV tables, figures and report.html to {result.out}")
    return "\n".join(lines)
