"""The reproduce report: for each claim of the paper, its number, ours (mean and spread over seeds) and a
verdict under the one rule of `claims.rule`, with one figure per claim; Markdown, self-contained HTML and
claims.json (every seed's value of every quantity a verdict reads, and the tests it rests on)."""

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
    LEVEL,
    LOSS_MARGIN,
    NOT_COVERED,
    ONSET_FACTOR,
    SINK_ABSENT,
    SINK_PRESENT,
    UNTESTED,
    VERDICTS,
    Claim,
    Finding,
    ResultFileError,
    Results,
    Rule,
    Run,
    RunResult,
    Stat,
    build_claims,
    group_results,
    sink_k,
    slot_sink,
    val_loss,
)
from sinklab.experiments.claims.rule import MISSING
from sinklab.experiments.suites import run_name_and_seed
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
        claims = build_claims(scale.windows, scale_config(scale).train.weight_decay, scale.control)
    suites = set(sweep["suites"])
    # The natural suite gathers runs of other suites: it holds every claim that its runs can judge.
    natural = {s.name for s in runs_for("natural", scale)} if "natural" in suites and scale else set()
    return [c for c in claims if c.suite in suites or (natural and set(c.runs) <= natural)]


def evaluate(
    results: Results, claims: list[Claim], scale: str, bos: bool = False
) -> list[tuple[Claim, Finding]]:
    return [(c, c.evaluate(results, scale, bos=bos)) for c in claims]


def evaluate_with_reads(
    results: Results, claims: list[Claim], scale: str, bos: bool = False
) -> list[tuple[Claim, Finding, Rule]]:
    """Each claim's finding and the rule that judged it (whose `read` holds every per-seed value it read)."""
    out = []
    for c in claims:
        rule = Rule(results, scale, bos=bos)
        out.append((c, c.evaluate_with(rule), rule))
    return out


def scale_has_bos(name: str) -> bool:
    """Whether every sequence of the named scale starts with the same BOS (unknown scales: no)."""
    from sinklab.experiments.suites import SCALES, prepends_bos

    return name in SCALES and prepends_bos(SCALES[name])


def _curves(results: Results, names: list[str], claim: Claim | None = None) -> dict[str, list]:
    """Per run, per seed: (step, value) of the claim's quantity (Sink_1 without a claim) over training."""
    metric = claim.metric if claim is not None else sink_k(1)
    out = {}
    for name in names:
        seeds = [s for r in results[name].seeds if len(s := metric.during_training(r)) > 1]
        if seeds:  # a curve needs two evaluations (a published claims.json holds one per seed)
            out[name] = seeds
    return out


def _claim_figure(claim: Claim, finding: Finding, results: Results, folder: Path) -> Path | None:
    """The claim's quantity per run and seed (left) and over training (right), the paper's value of the
    same quantity beside ours; the verdict in the title. None for a claim without evidence here."""
    names = [n for n in claim.runs if n in results]
    if not names or finding.verdict in (UNTESTED, MISSING):
        return None
    title = f"{finding.verdict}: {claim.text}\npaper: {claim.paper}"
    if claim.figure == "lengths":
        return _length_figure(claim, results["default"], title, folder)
    metric = claim.metric
    values = {n: [v for r in results[n].seeds if (v := metric(r)) is not None] for n in names}
    values = {n: v for n, v in values.items() if v}
    if not values:
        return None
    fig = plots.claim_figure(
        values, _curves(results, list(values), claim), metric.axis(), title, paper=dict(claim.paper_values)
    )
    return plots.save_png(fig, folder / f"claim_{claim.id}.png")


def _length_figure(claim: Claim, default: Run, title: str, folder: Path) -> Path | None:
    measured = [r.by_length for r in default.seeds if r.by_length]
    if not measured:
        return None
    by_eps = {
        f"{e:g}": [list(zip(m["lengths"], m["sink_1"][f"{e:g}"], strict=True)) for m in measured]
        for e in measured[0]["eps"]
    }
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
    if any(c.figure == "lengths" for c in claims):
        measure_default_lengths(out)
    results, unreadable = load_results(out)
    results, short = drop_short_runs(results, sweep)
    judged = evaluate_with_reads(results, claims, sweep["scale"], bos=scale_has_bos(sweep["scale"]))
    findings = [(c, f) for c, f, _ in judged]
    figures = out / "figures"
    images = {c.id: _claim_figure(c, f, results, figures) for c, f in findings}
    rule = Rule(results, sweep["scale"])
    overview = _overview(results, rule, figures)
    onset_figure = _onset_figure(results, rule, sweep, figures)
    context = {
        "sweep": sweep,
        "results": results,
        "findings": findings,
        "counts": {v: sum(f.verdict == v for _, f in findings) for v in VERDICTS},
        "rows": _run_rows(results),
        "unreadable": unreadable,
        "short": short,
        "not_covered": NOT_COVERED,
        "onset": rule.onset_text(),
        "rule": rule_text(),
        "seed_summary": seed_summary(results),
        "unjudged": unjudged_runs(results, claims),
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
    atomic_write_json(out / "claims.json", claims_json(judged, results, rule))
    return md_path, html_path, findings


def drop_short_runs(results: Results, sweep: dict[str, Any]) -> tuple[Results, dict[str, str]]:
    """Leave out of every verdict the runs with fewer finished seeds than the sweep trains (its run list):
    no verdict rests on fewer seeds than the scale asks for. Returns the rest and name -> 'k of n seeds'."""
    wanted = Counter(run_name_and_seed(name)[0] for name in sweep.get("runs", []))
    short = {
        name: f"{len(run.seeds)} of {wanted[name]} seeds finished"
        for name, run in results.items()
        if len(run.seeds) < wanted.get(name, 0)
    }
    return {name: run for name, run in results.items() if name not in short}, short


def unjudged_runs(results: Results, claims: list[Claim]) -> list[str]:
    """Finished runs that no claim of the sweep reads (published in the runs table, judged by nothing)."""
    read = {r for c in claims for r in c.runs}
    return [name for name in results if name not in read]


def claims_json(
    judged: list[tuple[Claim, Finding, Rule]], results: Results, rule: Rule | None = None
) -> dict[str, Any]:
    """The rule's constants and the default's onset, and per claim: the finding, the tests it rests on
    (with their per-seed inputs) and every seed's value of every quantity it read, with steps and tokens."""
    entries = []
    for c, f, claim_rule in judged:
        runs = {}
        for name in c.runs:
            if name in results:
                runs[name] = results[name].per_seed()
                runs[name].update(claim_rule.read.get(name, {}))
        entries.append(
            {
                "id": c.id,
                "claim": c.text,
                "paper": c.paper,
                "metric": {"key": c.metric.key, "label": c.metric.label, "unit": c.metric.unit},
                "paper_values": dict(c.paper_values),
                "ours": f.ours,
                "verdict": f.verdict,
                "rule": f.rule,
                **f.tests_json(),
                "runs": runs,
            }
        )
    onset = rule.onset if rule else None
    return {
        "rule": RULE_CONSTANTS,
        "onset": None
        if onset is None
        else {
            "step": onset.step,
            "tokens": onset.tokens,
            "per_seed": [list(s) if s else None for s in onset.per_seed],
        },
        "claims": entries,
    }


RULE_CONSTANTS = {
    "level": LEVEL,
    "equivalence_level": 1 - 2 * (1 - LEVEL),
    "sink_present": SINK_PRESENT,
    "sink_absent": SINK_ABSENT,
    "loss_margin": LOSS_MARGIN,
    "onset_factor": ONSET_FACTOR,
    "last_evals": LAST_EVALS,
}


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
    level = f"{LEVEL * 100:g} %"
    return " ".join(
        (
            f"A run's value is, per seed, the mean of its last {LAST_EVALS} evaluations",
            "([min–max] over seeds, n seeds).",
            f"Two runs differ when the {level} confidence interval of the difference",
            "of their means (Welch's t; paired t for two quantities of the same seeds)",
            "excludes 0 and the difference is at least the smallest effect worth calling",
            f"(one head = 100 / (layers x heads) points; {LOSS_MARGIN:g} nats for a loss).",
            f"A run has a sink when the interval of its mean lies at or above {SINK_PRESENT:g} %,",
            f"and lost it when the interval lies at or below {SINK_ABSENT:g} %",
            "and the default is above it by the difference rule.",
            "Two runs are the same when the 90 % interval of their difference lies within",
            f"one head (a loss: within {LOSS_MARGIN:g} nats; TOST).",
            f"Onset: per default seed, the first evaluation with Sink_1 >= {SINK_PRESENT:g} %;",
            "a run without a sink counts after the latest seed's onset (steps and tokens),",
            "else 'not at this scale'. Reproduced: every required test holds;",
            "contradicted: every test of a refuting group holds; inconclusive otherwise.",
        )
    )


def _overview(results: Results, rule: Rule, figures: Path) -> Path | None:
    """Which variant grew a sink? Every run's final Sink_1 (and Sink_1* on a slot) per seed, the default's
    seed range as a band."""
    rows = {}
    for name, run in results.items():
        stat, label = (run.stat(slot_sink), " (slot)") if run.slot_sink is not None else _strongest(run)
        if stat is not None:
            rows[name + label] = stat.values
    if not rows:
        return None
    default = rows.get("default")
    band = (min(default), max(default)) if default else None
    title = f"Which variant grew a sink? Final Sink_1 per seed (or where it sits), scale {rule.scale}"
    fig = plots.sink_dot_table(rows, band, title, present=SINK_PRESENT, absent=SINK_ABSENT)
    return plots.save_png(fig, figures / "sink1_overview.png")


def _strongest(run: Run) -> tuple[Stat | None, str]:
    """Sink_1 of a run, or Sink_k where its sink sits on a later position (a fixed token at k)."""
    stats = {k: st for k in (1, 2, 3, 4) if (st := run.stat(sink_k(k))) is not None}
    if not stats:
        return None, ""
    k = max(stats, key=lambda j: (stats[j].mean, -j))
    if k != 1 and stats[k].mean < SINK_PRESENT:
        k = 1  # no sink anywhere: a later position's stray 0.7 % is no place the sink "sits"
    return stats[k], "" if k == 1 else f" (Sink_{k})"


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
    onset = (rule.onset.step, rule.onset.tokens) if rule.onset else None
    per_seed = [s[0] if s else None for s in rule.onset.per_seed] if rule.onset else []
    figure = plots.onset_curve(seeds, title, onset, per_seed)
    return plots.save_png(figure, figures / "default_onset.png")


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
