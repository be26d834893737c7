"""`reproduce --suite pythia-trajectory`: `sinklab trajectory` on the Pythia checkpoint series the paper
measures (its Table 1 inputs: natural text, random and repeated tokens, 64 tokens, 100 samples), and the
claim "the sink emerges during pre-training on a natural first token" judged by the one rule.

Pythia is trained without a BOS (its first token is natural text) for 143k steps of 2,097,152 tokens (1024
sequences x 2048), far past the paper's 60M budget; its revisions are step0, step1, 2, 4, ..., 512, then
every 1000 steps. Each model's natural-text trajectory is one "seed" of the rule's default: its value is
the mean Sink_1 of its last three checkpoints, its onset the first checkpoint with Sink_1 >= 5 %.
Without the hub (no network, not cached) each series is listed as not run, and so is the suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sinklab.errors import SinklabError
from sinklab.io import atomic_write_json, atomic_write_text

MODELS = tuple(f"EleutherAI/pythia-{s}" for s in ("14m", "31m", "70m", "160m", "410m"))
REVISIONS = "step0,step1:512:x2,step1000,step2000,step4000,step8000,step16000,step32000,step64000,step143000"
TOKENS_PER_STEP = 2_097_152
SCALE = "pythia"  # a public series: the paper's training budget holds (sinklab.experiments.claims.rule)


@dataclass
class SeriesRow:
    model: str
    input: str
    out: Path
    sink_1: list[tuple[int, float]] = field(default_factory=list)  # (step, Sink_1 %) at ε = 0.3
    onset: dict[str, Any] | None = None
    not_run: str | None = None  # why, when it could not be measured


def command(model: str, spec: str, out: Path, samples: int) -> str:
    """The exact `sinklab trajectory` command of one series."""
    return (
        f"sinklab trajectory {model} --revisions {REVISIONS} --tokens-per-step {TOKENS_PER_STEP} "
        f"--input {spec} --length 64 --samples {samples} --allow-pickle --out {out}"
    )


def run_series(model: str, kind: str, spec: str, out: Path, samples: int) -> SeriesRow:
    from sinklab.measure.config import MeasureConfig
    from sinklab.trajectory.api import DEFAULT_POSITIONS, run_trajectory

    folder = out / "pythia" / model.split("/")[-1] / kind
    row = SeriesRow(model, kind, folder)
    # Pythia's step revisions may hold pickled weights only (pytorch_model.bin), read with weights_only.
    cfg = MeasureConfig(length=64, samples=samples, positions=DEFAULT_POSITIONS, allow_pickle=True)
    try:
        result = run_trajectory(
            [model], spec, cfg, folder, revisions=REVISIONS, tokens_per_step=TOKENS_PER_STEP
        )
    except (SinklabError, OSError, ValueError, RuntimeError, MemoryError) as err:  # no network, not cached
        first = str(err).strip().splitlines()[0][:240] if str(err).strip() else ""
        row.not_run = f"{type(err).__name__}: {first}"
        return row
    import json

    doc = json.loads((result.out / "trajectory.json").read_text())
    row.sink_1 = [(c["step"], c["metrics"]["sink_percent_by_eps"]["0.3"][0]) for c in doc["checkpoints"]]
    row.onset = doc["onset"]["0.3"]
    return row


def judge(rows: list[SeriesRow]) -> dict[str, Any]:
    """The catalogue's sink-emerges claim under the one rule, with each natural-text series as a seed."""
    from sinklab.experiments.claims import CLAIMS, Results, Rule, Run, RunResult

    seeds = [
        RunResult(
            "default",
            [row.sink_1[-1][1]],
            None,
            history=[{"step": s, "tokens": s * TOKENS_PER_STEP, "sink_percent": [v]} for s, v in row.sink_1],
            seed=n,
        )
        for n, row in enumerate(r for r in rows if r.input == "natural" and r.not_run is None)
    ]
    if not seeds:
        why = "no natural-text series could be measured here (the hub unreachable, the revisions not cached)"
        return {"verdict": "not run", "why": why}
    results: Results = {"default": Run("default", seeds)}
    claim = next(c for c in CLAIMS if c.id == "sink-emerges")
    rule = Rule(results, SCALE)
    finding = claim.evaluate_with(rule)
    return {
        "claim": "the sink emerges during pre-training on a natural first token (Pythia, no BOS)",
        "verdict": finding.verdict,
        "ours": finding.ours,
        "rule": finding.rule,
        "onset": rule.onset_text(),
        "tests": finding.tests_json(),
    }


def measure_pythia_trajectories(
    out: Path, models: tuple[str, ...] = MODELS, inputs: dict[str, str] | None = None, samples: int = 100
) -> tuple[list[SeriesRow], dict[str, Any]]:
    """Every (model, input) series, then the verdict; writes OUT/pythia_trajectory.json and .md."""
    from sinklab.experiments.open_lms import INPUTS

    rows = [
        run_series(model, kind, spec, Path(out), samples)
        for model in models
        for kind, spec in (inputs or INPUTS).items()
    ]
    verdict = judge(rows)
    atomic_write_json(
        Path(out) / "pythia_trajectory.json",
        {"verdict": verdict, "series": [{**r.__dict__, "out": str(r.out)} for r in rows]},
    )
    atomic_write_text(Path(out) / "pythia_trajectory.md", table(rows, verdict))
    return rows, verdict


def table(rows: list[SeriesRow], verdict: dict[str, Any]) -> str:
    lines = [
        "| model | input | Sink_1 at step 0 | last Sink_1 | onset step (Sink_1 >= 5 %) |",
        "|---|---|---|---|---|",
    ]
    skipped = []
    for r in rows:
        if r.not_run:
            skipped.append(f"- {r.model} ({r.input}): not run ({r.not_run})")
            continue
        onset = str(r.onset["step"]) if r.onset else "never"
        lines.append(f"| {r.model} | {r.input} | {r.sink_1[0][1]:.2f} | {r.sink_1[-1][1]:.2f} | {onset} |")
    if skipped:
        lines += ["", "Not run (the hub could not be reached, or the revision is not cached):", *skipped]
    if verdict.get("verdict") == "not run":
        lines = ["**suite pythia-trajectory: not run** — " + verdict["why"], "", *lines]
    else:
        lines += ["", f"**{verdict['claim']}**: {verdict['verdict']} ({verdict['rule']}; {verdict['onset']})"]
    return "\n".join(lines) + "\n"
