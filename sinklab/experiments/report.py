"""The reproduce report: for each claim of the paper, its number, ours and a verdict, with plots."""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sinklab.experiments import plots
from sinklab.experiments.claims import CLAIMS, VERDICTS, Claim, Finding, Results, RunResult
from sinklab.io import atomic_write_json, atomic_write_text


def load_results(out: Path) -> Results:
    results: Results = {}
    for run_dir in sorted((Path(out) / "runs").glob("*")):
        result = RunResult.load(run_dir)
        if result is not None:
            results[result.name] = result
    return results


def read_sweep(out: Path) -> dict[str, Any]:
    path = Path(out) / "sweep.json"
    if not path.exists():
        raise FileNotFoundError(f"{out} has no sweep.json: is it a `sinklab reproduce --out` directory?")
    return json.loads(path.read_text())


def evaluate(results: Results, suites: list[str], scale: str) -> list[tuple[Claim, Finding]]:
    return [(c, c.evaluate(results, scale)) for c in CLAIMS if c.suite in suites]


def _claim_plot(claim: Claim, results: Results, folder: Path) -> Path | None:
    names = [n for n in claim.runs if n in results]
    if not names:
        return None
    positions = 4 if claim.id.startswith(("fixed", "random", "prefix")) else 1
    if claim.id == "prefix-lm":
        positions = 6
    return plots.sink_bars(
        {n: results[n].sink_percent for n in names}, positions, claim.text, folder / f"claim_{claim.id}.png"
    )


def write_report(out: Path) -> tuple[Path, Path, list[tuple[Claim, Finding]]]:
    """Write OUT/report.md, OUT/report.html and OUT/claims.json from the finished runs under OUT/runs."""
    out = Path(out)
    sweep = read_sweep(out)
    results = load_results(out)
    findings = evaluate(results, sweep["suites"], sweep["scale"])
    figures = out / "figures"
    images = {c.id: _claim_plot(c, results, figures) for c, _ in findings}
    histories = {n: r.history for n, r in results.items() if r.history}
    curve = None
    if histories:
        curve = plots.curves(
            histories,
            lambda h: (h.get("sink_percent") or [None])[0],
            "Sink_1 (%)",
            "Sink_1 during training",
            figures / "sink1_curves.png",
            x_key="tokens" if all("tokens" in h for v in histories.values() for h in v) else "step",
        )
    counts = {v: sum(f.verdict == v for _, f in findings) for v in VERDICTS}
    md = _markdown(sweep, results, findings, images, curve, counts, out)
    md_path = atomic_write_text(out / "report.md", md)
    html_path = atomic_write_text(out / "report.html", _html(sweep, results, findings, images, curve, counts))
    atomic_write_json(
        out / "claims.json",
        [{"id": c.id, "claim": c.text, "paper": c.paper, **asdict(f)} for c, f in findings],
    )
    return md_path, html_path, findings


def claim_table(findings: list[tuple[Claim, Finding]]) -> str:
    rows = ["| claim | paper | ours | verdict |", "|---|---|---|---|"]
    rows += [f"| {c.text} | {c.paper} | {f.ours} | **{f.verdict}** |" for c, f in findings]
    return "\n".join(rows)


def _markdown(sweep, results, findings, images, curve, counts, out: Path) -> str:
    lines = [
        f"# sinklab reproduce: {', '.join(sweep['suites'])} at scale {sweep['scale']}",
        "",
        f"{len(results)} finished runs. Verdicts: "
        + ", ".join(f"{v} {n}" for v, n in counts.items() if n)
        + ".",
        f"Scale note: {sweep.get('note', '')}. Sink_k is the share of heads with α_k > 0.3 (%), on "
        "100 validation sequences of 64 tokens; * = on the sink slot.",
        "",
        claim_table(findings),
        "",
        "## Runs",
        "",
        "| run | Sink_1 | Sink_2 | Sink_1* | val loss |",
        "|---|---|---|---|---|",
    ]
    for name, r in sorted(results.items()):
        slot = f"{r.slot_sink:.2f}" if r.slot_sink is not None else "–"
        loss = f"{r.val_loss:.3f}" if r.val_loss is not None else "–"
        lines.append(f"| {name} | {r.sink(1):.2f} | {r.sink(2):.2f} | {slot} | {loss} |")
    lines += ["", "## Figures", ""]
    if curve:
        lines.append(f"![Sink_1 during training]({curve.relative_to(out)})")
    for c, _ in findings:
        if images.get(c.id):
            lines.append(f"![{c.text}]({images[c.id].relative_to(out)})")
    return "\n".join(lines) + "\n"


def _html(sweep, results, findings, images, curve, counts) -> str:
    colour = {
        "reproduced": "#1a7f37",
        "contradicted": "#cf222e",
        "not at this scale": "#9a6700",
        "missing": "#666",
    }
    rows = "".join(
        f"<tr><td>{html.escape(c.text)}</td><td>{html.escape(c.paper)}</td><td>{html.escape(f.ours)}</td>"
        f"<td style='color:{colour[f.verdict]};font-weight:bold'>{f.verdict}</td></tr>"
        for c, f in findings
    )
    figs = "".join(
        f"<figure><img src='{plots.png_data_uri(p)}'><figcaption>{html.escape(c.text)}</figcaption></figure>"
        for c, _ in findings
        if (p := images.get(c.id))
    )
    top = f"<figure><img src='{plots.png_data_uri(curve)}'></figure>" if curve else ""
    summary = ", ".join(f"{v}: {n}" for v, n in counts.items() if n)
    return f"""<!doctype html><meta charset="utf-8"><title>sinklab reproduce</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;font-size:14px}}
figure{{display:inline-block;margin:8px}}
img{{max-width:520px}}</style>
<h1>sinklab reproduce: {html.escape(", ".join(sweep["suites"]))} at scale {html.escape(sweep["scale"])}</h1>
<p>{len(results)} finished runs. {html.escape(summary)}. {html.escape(sweep.get("note", ""))}</p>
<table><tr><th>claim</th><th>paper</th><th>ours</th><th>verdict</th></tr>{rows}</table>
<h2>Figures</h2>{top}{figs}
"""
