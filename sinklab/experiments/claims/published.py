"""Judge a published claims.json again, from its per-seed values alone (no run directories).

A claims.json holds, per claim, every seed's value of each quantity its verdict read, with steps and tokens.
`results_from_published` rebuilds the runs from those values (one evaluation per seed: the published value,
already the mean of the last evaluations), so the current rule can judge them; a quantity the file does not
hold is missing, never zero. `python -m sinklab.experiments.claims.published CLAIMS.json --scale tiny
--onset 3500,never,4500 --out DIR` writes DIR/claims.json and DIR/claims.md.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from sinklab.experiments.claims.catalogue import Claim, build_claims
from sinklab.experiments.claims.judges import Finding
from sinklab.experiments.claims.results import Results, RunResult, group_results
from sinklab.experiments.claims.rule import MISSING, Onset, Rule
from sinklab.experiments.suites import SCALES, prepends_bos, runs_for, scale_config

SINK_KEY = re.compile(r"^sink_(\d+)$")
NOT_PUBLISHED = "per-seed values not in the published claims.json"


def published_runs(data: Any) -> dict[str, dict[str, list[Any]]]:
    """Every run's per-seed values over all claims of a claims.json (the list of the first format, or the
    object with "claims"), the union of the quantities each claim stored."""
    entries = data["claims"] if isinstance(data, dict) else data
    runs: dict[str, dict[str, list[Any]]] = {}
    for entry in entries:
        for name, values in entry.get("runs", {}).items():
            runs.setdefault(name, {}).update(values)
    return runs


def _model_size(scale: str, name: str) -> tuple[int, int]:
    """(layers, heads) of a run at a known scale (from its suite spec); (0, 0) if unknown."""
    if scale not in SCALES:
        return 0, 0
    specs = {s.name: s for s in runs_for("all", SCALES[scale])}
    spec = specs.get(name)
    model = scale_config(SCALES[scale], spec.overrides if spec else ()).model
    return int(model.n_layer), int(model.n_head)


def results_from_published(runs: dict[str, dict[str, list[Any]]], scale: str) -> Results:
    single = []
    for name, values in runs.items():
        layers, heads = _model_size(scale, name)
        ks = sorted(int(m[1]) for key in values if (m := SINK_KEY.match(key)))
        for i, seed in enumerate(values["seeds"]):
            sinks = [0.0] * max(ks, default=1)
            for k in ks:  # a position the file does not hold stays 0 only beyond every position it holds
                sinks[k - 1] = float(values[f"sink_{k}"][i])
            line = {
                "step": values["steps"][i],
                "tokens": values["tokens"][i],
                "sink_percent": sinks,
                "val_loss": values["val_loss"][i],
            }
            if (slot := values.get("slot_sink", [None] * (i + 1))[i]) is not None:
                line["slot_sink_percent"] = slot
            single.append(
                RunResult(
                    name=name,
                    sink_percent=sinks,
                    val_loss=values["val_loss"][i],
                    slot_sink=slot,
                    history=[line],
                    seed=seed,
                    layers=layers,
                    heads=heads,
                )
            )
    return group_results(single)


def rejudge(
    runs: dict[str, dict[str, list[Any]]], scale: str, onset: Onset | None, claims: list[Claim]
) -> list[tuple[Claim, Finding, Rule]]:
    """Each claim judged by the current rule from the published values; what the file lacks is missing."""
    results = results_from_published(runs, scale)
    bos = scale in SCALES and prepends_bos(SCALES[scale])
    out = []
    for claim in claims:
        rule = Rule(results, scale, bos=bos, known_onset=onset)
        finding = claim.evaluate_with(rule)
        if finding.verdict == MISSING and "runs not finished" not in finding.rule:
            finding = Finding(finding.ours, MISSING, f"{NOT_PUBLISHED} ({finding.rule})")
        elif finding.verdict == MISSING:
            finding = Finding(finding.ours, MISSING, finding.rule.replace("not finished", "not trained"))
        out.append((claim, finding, rule))
    return out


def parse_onset(text: str, tokens_per_step: int) -> Onset:
    """ "3500,never,4500" -> each default seed's onset step (tokens = steps x tokens_per_step)."""
    seeds = [None if s.strip() == "never" else int(s) for s in text.split(",")]
    return Onset([None if s is None else (s, s * tokens_per_step) for s in seeds])


def main(argv: list[str] | None = None) -> int:
    from sinklab.experiments.report import _claim_figure, _overview, claim_table, claims_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("claims", type=Path)
    parser.add_argument("--scale", required=True)
    parser.add_argument("--onset", required=True, help="each default seed's onset step, e.g. 3500,never,4500")
    parser.add_argument("--tokens-per-step", type=int, default=512)
    parser.add_argument("--extra", type=Path, help="JSON {run: {quantity: [per seed]}} to add (stated)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--figures", action="store_true", help="also draw OUT/figures (no training curves)")
    args = parser.parse_args(argv)
    runs = published_runs(json.loads(args.claims.read_text()))
    extra = json.loads(args.extra.read_text()) if args.extra else {}
    for name, values in extra.items():
        if name != "note":
            runs.setdefault(name, {}).update(values)
    scale = SCALES[args.scale]
    claims = list(build_claims(scale.windows, scale_config(scale).train.weight_decay, scale.control))
    onset = parse_onset(args.onset, args.tokens_per_step)
    judged = rejudge(runs, args.scale, onset, claims)
    results = results_from_published(runs, args.scale)
    data = claims_json(judged, results, judged[0][2] if judged else None)
    data["source"] = {"claims": str(args.claims), "onset": args.onset, "extra": extra}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "claims.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    (args.out / "claims.md").write_text(claim_table([(c, f) for c, f, _ in judged]) + "\n")
    if args.figures:
        for claim, finding, _ in judged:
            _claim_figure(claim, finding, results, args.out / "figures")
        _overview(results, judged[0][2], args.out / "figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
