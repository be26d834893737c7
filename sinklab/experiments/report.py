"""The reproduce report: for each claim of the paper, its number, ours (mean and spread over seeds) and a
verdict under the one rule of `claims.py`, with one figure per claim; Markdown, self-contained HTML and
claims.json (with every seed's values)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from sinklab import plots
from sinklab.errors import SinklabError
from sinklab.experiments.claims import (
    LAST_EVALS,
    NOT_COVERED,
    ONSET_FACTOR,
    SINK_ABSENT,
    SINK_PRESENT,
    VERDICTS,
    Claim,
    Finding,
    ResultFileError,
    Results,
    Rule,
    Run,
    RunResult,
    build_claims,
    group_results,
    run_name_and_seed,
    sink_k,
    slot_sink,
    val_loss,
)
from sinklab.io import atomic_write_json, atomic_write_text
from sinklab.reports import markdown_cell, render

VERDICT_COLOURS = {
    "reproduced": "#1a7f37",
    "contradicted": "#cf222e",
    "inconclusive": "#6e40c9",
    "not at this scale": "#9a6700",
    "untested at CPU scales": "#bc4c00",
    "missing": "#666",
}


def load_results(out: Path) -> tuple[Results, dict[str, str]]:
    """Finished runs under OUT/runs grouped by name (seeds together), and unreadable ones -> why."""
    single, unreadable = [], {}
    for run_dir in sorted((Path(out) / "runs").glob("*")):
        try:
            result = RunResult.load(run_dir)
        except (ResultFileError, KeyError, TypeError) as err:
            unreadable[run_dir.name] = str(err)
            continue
        if result is not None:
            single.append(result)
    return group_results(single), unreadable


def read_sweep(out: Path) -> dict[str, Any]:
    path = Path(out) / "sweep.json"
    if not path.exists():
        raise FileNotFoundError(f"{out} has no sweep.json: is it a `sinklab reproduce --out` directory?")
    try:
        sweep = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SinklabError(
            f"{path} is corrupt ({err}); run the same `sinklab reproduce` command again to rewrite it"
        ) from None
    if not isinstance(sweep, dict) or not isinstance(sweep.get("suites"), list) or "scale" not in sweep:
        raise SinklabError(f"{path} is not a sinklab sweep file (needs 'suites' and 'scale')")
    return sweep


def claims_for_sweep(sweep: dict[str, Any]) -> list[Claim]:
    """The claims of the sweep's suites, with run names as the sweep's scale defines them."""
    from sinklab.experiments.suites import SCALES, runs_for, scale_config

    scale = SCALES.get(sweep["scale"])
    if scale is None:
        claims = build_claims()
    else:
        claims = build_claims(scale.windows, scale_config(scale).train.weight_decay)
    suites = set(sweep["suites"])
    # The natural suite gathers runs of other suites: it holds every claim that its runs can judge.
    natural = {s.name for s in runs_for("natural", scale)} if "natural" in suites and scale else set()
    return [c for c in claims if c.suite in suites or (natural and set(c.runs) <= natural)]


def evaluate(
    results: Results, claims: list[Claim], scale: str, bos: bool = False
) -> list[tuple[Claim, Finding]]:
    return [(c, c.evaluate(results, scale, bos=bos)) for c in claims]


def scale_has_bos(name: str) -> bool:
    """Whether every sequence of the named scale starts with the same BOS (unknown scales: no)."""
    from sinklab.experiments.suites import SCALES, prepends_bos

    return name in SCALES and prepends_bos(SCALES[name])


def _curves(results: Results, names: list[str]) -> dict[str, list[list[tuple[float, float]]]]:
    out = {}
    for name in names:
        seeds = [
            [(float(h["step"]), float(h["sink_percent"][0])) for h in r.history if h.get("sink_percent")]
            for r in results[name].seeds
        ]
        if any(seeds):
            out[name] = [s for s in seeds if s]
    return out


def _claim_figure(claim: Claim, results: Results, folder: Path) -> Path | None:
    names = [n for n in claim.runs if n in results]
    if not names:
        return None
    if claim.id == "eps-length":
        return _length_figure(claim, results["default"], folder)
    k = claim.position
    position = sink_k(k)
    slot = any(results[n].slot_sink is not None for n in names)
    metric, label = (
        (slot_sink, "Sink_1* (slot runs), Sink_1 (others), %") if slot else (position, f"Sink_{k} (%)")
    )
    values = {n: [v for r in results[n].seeds if (v := metric(r)) is not None] for n in names}
    if slot:  # runs without a slot show Sink_1 beside the slot runs
        values = {
            n: v or [x for r in results[n].seeds if (x := sink_k(1)(r)) is not None]
            for n, v in values.items()
        }
    fig = plots.claim_figure(
        values,
        _curves(results, names),
        label,
        f"{claim.text}\npaper: {claim.paper}",
        paper=dict(claim.paper_values),
    )
    return plots.save_png(fig, folder / f"claim_{claim.id}.png")


def _length_figure(claim: Claim, default: Run, folder: Path) -> Path | None:
    measured = [r.by_length for r in default.seeds if r.by_length]
    if not measured:
        return None
    by_eps = {
        f"{e:g}": [list(zip(m["lengths"], m["sink_1"][f"{e:g}"], strict=True)) for m in measured]
        for e in measured[0]["eps"]
    }
    title = f"{claim.text}\npaper: {claim.paper}"
    return plots.save_png(plots.length_curves(by_eps, title), folder / f"claim_{claim.id}.png")


def measure_default_lengths(out: Path) -> None:
    """Sink_1 over evaluation lengths for each finished default seed (cached in its run directory). A seed
    whose final model cannot be measured is named on stderr; its claim then reads "not measured"."""
    from sinklab.experiments.lengths import sink_by_length

    for run_dir in sorted((Path(out) / "runs").glob("default*")):
        if run_name_and_seed(run_dir.name)[0] != "default":
            continue
        try:
            sink_by_length(run_dir)
        except (OSError, ValueError, RuntimeError) as err:
            why = f"Sink_1 over evaluation lengths not measured ({err})"
            print(f"warning: {run_dir.name}: {why}", file=sys.stderr)


def _run_rows(results: Results) -> list[dict[str, str]]:
    rows = []
    for name, run in results.items():
        cells = {"run": name, "n": str(len(run.seeds))}
        for key, metric in (
            ("sink_1", sink_k(1)),
            ("sink_2", sink_k(2)),
            ("slot", slot_sink),
            ("loss", val_loss),
        ):
            stat = run.stat(metric)
            cells[key] = stat.text(3 if key == "loss" else 2).replace(f" (n={stat.n})", "") if stat else "–"
        rows.append(cells)
    return rows


def write_report(out: Path) -> tuple[Path, Path, list[tuple[Claim, Finding]]]:
    """Write OUT/report.md, OUT/report.html and OUT/claims.json from the finished runs under OUT/runs."""
    out = Path(out)
    sweep = read_sweep(out)
    claims = claims_for_sweep(sweep)
    if any(c.id == "eps-length" for c in claims):
        measure_default_lengths(out)
    results, unreadable = load_results(out)
    findings = evaluate(results, claims, sweep["scale"], bos=scale_has_bos(sweep["scale"]))
    figures = out / "figures"
    images = {c.id: _claim_figure(c, results, figures) for c, _ in findings}
    rule = Rule(results, sweep["scale"])
    overview = _overview(results, claims, rule, figures)
    onset_figure = _onset_figure(results, rule, sweep, figures)
    counts = {v: sum(f.verdict == v for _, f in findings) for v in VERDICTS}
    context = {
        "sweep": sweep,
        "results": results,
        "findings": findings,
        "counts": counts,
        "rows": _run_rows(results),
        "unreadable": unreadable,
        "not_covered": NOT_COVERED,
        "onset": rule.onset_text(),
        "rule": rule_text(),
        "seed_summary": seed_summary(results),
    }
    md = render(
        "sinklab.experiments",
        "report.md.j2",
        **context,
        claim_table=claim_table(findings),  # the table `sinklab report` prints
        images=_relative(images, out),
        overview=_rel(overview, out),
        onset_figure=_rel(onset_figure, out),
    )
    md_path = atomic_write_text(out / "report.md", md)
    page = render(
        "sinklab.experiments",
        "report.html.j2",
        **context,
        images={k: plots.png_data_uri(p) for k, p in images.items() if p},
        overview=plots.png_data_uri(overview) if overview else None,
        onset_figure=plots.png_data_uri(onset_figure) if onset_figure else None,
        colours=VERDICT_COLOURS,
    )
    html_path = atomic_write_text(out / "report.html", page)
    atomic_write_json(out / "claims.json", claims_json(findings, results))
    return md_path, html_path, findings


def claims_json(findings: list[tuple[Claim, Finding]], results: Results) -> list[dict[str, Any]]:
    """One entry per claim: the finding, the rule that decided it, and every seed of every run it reads."""
    return [
        {
            "id": c.id,
            "claim": c.text,
            "paper": c.paper,
            "ours": f.ours,
            "verdict": f.verdict,
            "rule": f.rule,
            "runs": {n: results[n].per_seed() for n in c.runs if n in results},
        }
        for c, f in findings
    ]


def seed_summary(results: Results) -> str:
    """How many runs finished and with how many seeds, e.g. '58 finished runs (20 run names, 3 seed(s) each;
    2 seed(s): pos_sinusoidal)'."""
    counts = {name: len(run.seeds) for name, run in results.items()}
    if not counts:
        return "no finished runs"
    frequency = Counter(counts.values())
    usual = max(frequency, key=lambda n: (frequency[n], n))  # the commonest count; ties: more seeds
    text = f"{sum(counts.values())} finished runs ({len(counts)} run names, {usual} seed(s) each"
    others = sorted({n for n in counts.values() if n != usual})
    for n in others:
        names = ", ".join(name for name, k in counts.items() if k == n)
        text += f"; {n} seed(s): {names}"
    return text + ")"


def rule_text() -> str:
    return (
        f"A run's value is the mean of its last {LAST_EVALS} evaluations, averaged over seeds "
        "([min–max] over seeds, n seeds). Two values differ only beyond max(one head's worth = "
        "100 / (layers x heads), 2 x the pooled seed sd). "
        f"A run has a sink at Sink_1 >= {SINK_PRESENT:g} % and none at <= {SINK_ABSENT:g} %; a run without "
        f"a sink counts as evidence only after >= {ONSET_FACTOR:g} x the default's sink onset (steps and "
        "tokens), else the verdict is 'not at this scale'. 'inconclusive': the difference is within "
        "noise, or (for a claim that runs do not differ) the noise is at least the default's whole value, "
        "so a run that lost its sink would look the same."
    )


def _overview(results: Results, claims: list[Claim], rule: Rule, figures: Path) -> Path | None:
    by_suite: dict[str, list[str]] = {}
    for c in claims:
        for n in c.runs:
            if n in results and n not in by_suite.setdefault(c.suite, []):
                by_suite[c.suite].append(n)
    panels = {s: _curves(results, names) for s, names in by_suite.items()}
    panels = {s: p for s, p in panels.items() if p}
    if not panels:
        return None
    onset = float(rule.onset[0]) if rule.onset else None
    return plots.save_png(plots.suite_curves(panels, onset=onset), figures / "sink1_curves.png")


def _onset_figure(results: Results, rule: Rule, sweep: dict[str, Any], figures: Path) -> Path | None:
    """When the default run's sink emerged, against steps and tokens (the paper's Fig. 4 shape)."""
    default = results.get("default")
    if default is None:
        return None
    seeds = [
        [
            (float(h["step"]), float(h.get("tokens", 0)), float(h["sink_percent"][0]))
            for h in r.history
            if h.get("sink_percent")
        ]
        for r in default.seeds
    ]
    seeds = [s for s in seeds if s]
    if not seeds:
        return None
    title = f"default run at scale {sweep['scale']}: Sink_1 during training ({len(seeds)} seed(s))"
    return plots.save_png(plots.onset_curve(seeds, title, rule.onset), figures / "default_onset.png")


def _relative(images: dict[str, Path | None], out: Path) -> dict[str, str]:
    return {k: str(p.relative_to(out)) for k, p in images.items() if p}


def _rel(path: Path | None, out: Path) -> str | None:
    return str(path.relative_to(out)) if path else None


def claim_table(findings: list[tuple[Claim, Finding]]) -> str:
    rows = ["| claim | paper | ours | verdict | rule |", "|---|---|---|---|---|"]
    for c, f in findings:
        cells = (c.text, c.paper, f.ours, f"**{f.verdict}**", f.rule)
        rows.append("| " + " | ".join(markdown_cell(x) for x in cells) + " |")
    return "\n".join(rows)
