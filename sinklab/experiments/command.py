"""`sinklab reproduce`: the paper's experiments as preset sweeps, then the report."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from sinklab.config import add_set_argument
from sinklab.errors import SinklabError
from sinklab.experiments.suites import (
    SCALES,
    RunSpec,
    Scale,
    get_scale,
    run_name_and_seed,
    runs_for,
    seeds_per_run,
    suite_names,
    with_seeds,
)
from sinklab.io import atomic_write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", help=f"one of: {', '.join(suite_names())} (required unless --status)")
    parser.add_argument("--scale", default="tiny", help=f"one of: {', '.join(SCALES)} (default tiny)")
    parser.add_argument("--out", required=True, type=Path, help="sweep directory (runs/, logs/, report)")
    parser.add_argument("--jobs", type=int, default=None, help="runs at once (default: CPU cores, 1 on GPU)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=(
            "seeds per run (default: the scale's: 3 at tiny; at ref 10 for the runs graded comparisons "
            "read, 5 for the rest; 1 at 60m/1b)"
        ),
    )
    parser.add_argument("--dry-run", action="store_true", help="list the runs and the time estimate only")
    parser.add_argument(
        "--models", nargs="*", help="open-lms, pythia-trajectory: hub ids (or folders) instead of the paper's"
    )
    parser.add_argument(
        "--samples", type=int, default=100, help="open-lms, pythia-trajectory: sequences per input kind"
    )
    parser.add_argument(
        "--launcher",
        choices=("local", "slurm"),
        default="local",
        help="local: `sinklab train` processes on this machine (default); slurm: one submitit job per run",
    )
    parser.add_argument(
        "--status", action="store_true", help="show the state of each run in --out (and its job) and exit"
    )
    parser.add_argument(
        "--train-all",
        action="store_true",
        help="at a CPU scale, train every run even if the default grows no sink (by default the default "
        "trains first and the rest are skipped then: every claim but sink-emerges needs the default's sink)",
    )
    from sinklab.experiments import launchers

    launchers.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from sinklab.experiments import launchers

    if args.status:
        return launchers.print_status(args.out)
    if args.suite is None:
        raise SinklabError(f"--suite is required (one of: {', '.join(suite_names())}), except with --status")
    if args.suite not in suite_names():
        raise ValueError(f"unknown suite {args.suite!r}; accepted: {', '.join(suite_names())}")
    if args.suite == "open-lms":
        if args.launcher == "slurm":
            raise SinklabError("--suite open-lms measures on this machine: only with --launcher local")
        from sinklab.experiments.open_lms import MODELS, measure_open_lms, open_lm_table

        models = tuple(args.models) if args.models else MODELS
        rows = measure_open_lms(args.out, models, samples=args.samples)
        print(open_lm_table(rows, sorted({k for r in rows for k in r.values})))
        return 0
    if args.suite == "pythia-trajectory":
        if args.launcher == "slurm":
            raise SinklabError(
                "--suite pythia-trajectory measures on this machine: only with --launcher local"
            )
        from sinklab.experiments.pythia_trajectory import MODELS, measure_pythia_trajectories, table

        rows, verdict = measure_pythia_trajectories(
            args.out, tuple(args.models) if args.models else MODELS, samples=args.samples
        )
        print(table(rows, verdict), end="")
        return 0
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1 (runs at once), got {args.jobs}")
    if args.seeds is not None and args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    slurm = args.launcher == "slurm"
    if slurm and args.jobs is not None:
        raise SinklabError("--jobs: only with --launcher local (use --max-parallel)")
    if not slurm:
        launchers.check_local_arguments(args)
    options = launchers.options_from_args(args) if slurm else None
    scale = get_scale(args.scale)
    specs = with_seeds(runs_for(args.suite, scale), seeds_per_run(scale, args.seeds))
    suites = (
        [s for s in suite_names() if s not in ("all", "open-lms", "pythia-trajectory")]
        if args.suite == "all"
        else [args.suite]
    )
    specs = order_for_claims(specs, scale, suites)
    from sinklab.experiments.sweep import (
        FINISHED,
        check_not_stale,
        estimate_seconds,
        run_state,
        run_sweep,
        scale_estimate_seconds,
        stale_runs,
    )

    states = {s.name: run_state(args.out / "runs" / s.name) for s in specs}
    stale = stale_runs(specs, scale, args.out)
    untestable = set() if slurm or args.train_all else untestable_runs(specs, scale, suites)
    unread = set() if slurm or args.train_all else unread_runs(specs, scale, suites) - untestable
    for name in untestable | unread:
        if states[name] != FINISHED:
            states[name] = "SKIP"
    todo = [s.name for s in specs if states[s.name] not in (FINISHED, "SKIP")]
    # at once: the jobs Slurm may run together, or the local trainers
    jobs = (options.max_parallel or max(1, len(todo))) if options else (args.jobs or _default_jobs())
    estimate = estimate_seconds([s for s in specs if s.name in todo], scale, args.out, jobs)
    print(
        f"{len(specs)} runs at scale {scale.name} ({scale.note}); "
        f"{sum(st == FINISHED for st in states.values())} already finished."
    )
    for spec in specs:
        state = "STALE" if spec.name in stale else states[spec.name]
        print(f"  {spec.name:24s} {state:9s} {' '.join(spec.overrides) or '(defaults)'}")
    measured = scale_estimate_seconds([s for s in specs if s.name in todo], scale, jobs)
    if estimate is not None:
        print(f"estimated time: {estimate / 60:.0f} min with {jobs} parallel run(s)")
    elif measured is not None:
        print(
            f"estimated time: {measured / 60:.0f} min with {jobs} parallel run(s), from the scale's measured "
            f"speed ({scale.seconds_per_step:g} s/step; the first run's logged speed replaces it)"
        )
    else:
        print(
            f"estimated time: unknown until the first run logs its speed (scale {scale.name} has no "
            "measured one)"
        )
    if untestable:
        print(
            f"SKIP: {len(untestable)} run(s) that only natural-first-token claims read; every sequence "
            f"at scale {scale.name} starts with the same BOS, so those claims are untested here whatever "
            "the runs show (--train-all: train them anyway)"
        )
        specs = [s for s in specs if s.name not in untestable]
    if unread:
        print(
            f"SKIP: {len(unread)} run(s) that no claim reads (variants beyond the paper's claims); at a CPU "
            "scale they cost hours and decide nothing (--train-all: train them anyway)"
        )
        specs = [s for s in specs if s.name not in unread]
    gated = set() if slurm or args.train_all else gated_runs(specs, scale, suites)
    if gated:
        print(
            f"the default trains first; the other {len(gated)} run(s) (and their seeds) train only if it "
            "grows a sink, which every claim reading them needs (--train-all: train them anyway)"
        )
    if args.dry_run:
        for name, diffs in stale.items():
            print(f"STALE {name}: trained with other settings ({'; '.join(diffs)})")
        if options is not None:
            print(launchers.dry_run_script(args.out, options, len(todo)))
        return 0
    check_not_stale(specs, scale, args.out, stale)  # before sweep.json changes
    args.out.mkdir(parents=True, exist_ok=True)
    sweep = merged_sweep(args.out, suites, scale.name, scale.note, [s.name for s in specs])
    atomic_write_json(args.out / "sweep.json", sweep)
    if options is not None:
        failed = launchers.run_slurm(specs, scale, args.out, options, wait=args.wait)
        return 0 if failed is None else _report(args.out, failed)
    if not gated:
        return _report(args.out, run_sweep(specs, scale, args.out, jobs=jobs).failed)
    # The default first: whether it grows a sink decides if any claim can use the other runs.
    first = [s for s in specs if run_name_and_seed(s.name)[0] == "default"]
    failed = dict(run_sweep(first, scale, args.out, jobs=jobs).failed)
    rest = [s for s in specs if s not in first]
    if default_without_sink(args.out, scale):
        skipped = [s for s in rest if run_name_and_seed(s.name)[0] in gated]
        print(
            f"the default grew no sink at scale {scale.name}: skipping {len(skipped)} run(s); every claim "
            "reading them needs the default's sink, so they would be 'not at this scale' or 'untested' "
            "whatever they show (--train-all trains them anyway)"
        )
        rest = [s for s in rest if s not in skipped]
    failed.update(run_sweep(rest, scale, args.out, jobs=jobs).failed)
    return _report(args.out, failed)


def order_for_claims(specs: list[RunSpec], scale: Scale, suites: list[str]) -> list[RunSpec]:
    """The default's seeds first, then the runs of the claim that needs the fewest run-seeds not yet
    ordered, and so on: a sweep cut short has judged as many claims as its finished runs allow."""
    from sinklab.experiments.report import claims_for_sweep

    by_name: dict[str, list[RunSpec]] = {}
    for spec in specs:
        by_name.setdefault(run_name_and_seed(spec.name)[0], []).append(spec)
    ordered = list(by_name.get("default", []))
    pending = [c.runs for c in claims_for_sweep({"suites": suites, "scale": scale.name})]
    done = {"default"}
    while pending:
        cost = [sum(len(by_name.get(r, [])) for r in set(runs) - done) for runs in pending]
        runs = pending.pop(cost.index(min(cost)))
        for name in runs:
            if name not in done:
                ordered += by_name.get(name, [])
                done.add(name)
    return ordered + [s for s in specs if run_name_and_seed(s.name)[0] not in done]


def untestable_runs(specs: list[RunSpec], scale: Scale, suites: list[str]) -> set[str]:
    """At a CPU scale whose sequences all start with the same BOS: the runs (seeds included) that only claims
    about a natural first token read; those claims are untested there whatever the runs show."""
    from sinklab.experiments.claims import PAPER_SCALES, runs_only_natural_claims_read
    from sinklab.experiments.report import claims_for_sweep
    from sinklab.experiments.suites import prepends_bos

    if scale.name in PAPER_SCALES or not prepends_bos(scale):
        return set()
    only_natural = runs_only_natural_claims_read(claims_for_sweep({"suites": suites, "scale": scale.name}))
    return {s.name for s in specs if run_name_and_seed(s.name)[0] in only_natural}


def unread_runs(specs: list[RunSpec], scale: Scale, suites: list[str]) -> set[str]:
    """At a CPU scale: the runs (seeds included) that no claim of the suites reads, such as the variants
    beyond the paper (softpick, gated attention, ...); empty at the paper's scales, which train what the
    suites list."""
    from sinklab.experiments.claims import PAPER_SCALES
    from sinklab.experiments.report import claims_for_sweep

    if scale.name in PAPER_SCALES:
        return set()
    claims = claims_for_sweep({"suites": suites, "scale": scale.name})
    read = {"default"} | {r for c in claims for r in c.runs}
    return {s.name for s in specs if run_name_and_seed(s.name)[0] not in read}


def gated_runs(specs: list[RunSpec], scale: Scale, suites: list[str]) -> set[str]:
    """At a CPU scale: the run names (seeds aside) that wait for the default, because no claim can use them
    if the default grows no sink. Empty at the paper's scales, whose budget the claims take as given."""
    from sinklab.experiments.claims import PAPER_SCALES, runs_without_default_sink
    from sinklab.experiments.report import claims_for_sweep

    if scale.name in PAPER_SCALES:
        return set()
    claims = claims_for_sweep({"suites": suites, "scale": scale.name})
    names = {run_name_and_seed(s.name)[0] for s in specs}
    return names - runs_without_default_sink(claims)


def default_without_sink(out: Path, scale: Scale) -> bool:
    """Whether the finished default run(s) under OUT have no sink by the claims' rule."""
    from sinklab.experiments.claims import Rule
    from sinklab.experiments.report import load_results

    results, _ = load_results(out)
    rule = Rule(results, scale.name)
    return rule.baseline is not None and not rule.default_has_sink


def _report(out: Path, failed: dict[str, str]) -> int:
    """Write the report; 1 when a run failed (each named with its log)."""
    from sinklab.experiments.report import claim_table, write_report

    md, html, findings = write_report(out)
    print(claim_table(findings))
    print(f"report: {html} and {md}")
    if failed:
        print(f"{len(failed)} run(s) failed: " + ", ".join(f"{n} ({p})" for n, p in failed.items()))
        return 1
    return 0


def merged_sweep(out: Path, suites: list[str], scale: str, note: str, runs: list[str]) -> dict:
    """sweep.json for this invocation, keeping the suites an earlier one at the same scale put in `out`, so
    that `--suite all` followed by `--suite data` still reports every suite."""
    sweep = {"suites": list(suites), "scale": scale, "note": note, "runs": list(runs)}
    path = Path(out) / "sweep.json"
    try:
        previous = json.loads(path.read_text()) if path.exists() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        previous = {}  # a corrupt sweep.json is rewritten from this invocation
    if isinstance(previous, dict) and previous.get("scale") == scale:
        sweep["suites"] = list(dict.fromkeys([*previous.get("suites", []), *suites]))
        sweep["runs"] = list(dict.fromkeys([*previous.get("runs", []), *runs]))
    return sweep


def _default_jobs() -> int:
    import torch

    return 1 if torch.cuda.is_available() else max(1, os.cpu_count() or 1)


# ---- sinklab demo ----------------------------------------------------------------------------------
def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)"
    )
    parser.add_argument("--steps", type=int, help="optimizer steps per model (default: the demo preset's)")
    parser.add_argument("--jobs", type=int, default=2, help="models trained at once (default 2)")
    add_set_argument(parser, "extra config overrides for both models (several after one --set, or repeated)")


def run_demo(args: argparse.Namespace) -> int:
    from sinklab.experiments.demo import SIGMOID, SOFTMAX, demo_scale, prepare_shared_data, write_demo_report
    from sinklab.experiments.suites import scale_config
    from sinklab.experiments.sweep import run_sweep

    if args.jobs < 1:
        raise ValueError(f"--jobs must be an integer >= 1 (models trained at once), got {args.jobs}")
    scale = demo_scale(args.steps, tuple(args.overrides))
    scale_config(scale)  # every override checked before the banner and the data preparation
    out: Path = args.out
    print(f"sinklab demo: training a softmax and a sigmoid (no normalisation) model side by side -> {out}")
    print(
        "  corpus: the Python standard library of this interpreter (no download); "
        "every sequence starts with the same BOS token (the sink appears sooner at this tiny scale)"
    )
    prepare_shared_data(scale)
    outcome = run_sweep([SOFTMAX, SIGMOID], scale, out, jobs=args.jobs)
    if outcome.failed:
        raise SinklabError(
            "training failed: " + ", ".join(f"{n} (log: {p})" for n, p in outcome.failed.items())
        )
    summary = write_demo_report(out)
    print(summary.verdict_text)
    if summary.mask_sink_text:
        print(summary.mask_sink_text)
    print(f"report: {out / 'report.html'} and {out / 'report.md'}")
    return 0


# ---- sinklab report DIR: rebuild the claim table and plots of a `reproduce` directory -----------------
def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dir", type=Path, help="a `sinklab reproduce --out` directory, or one `sinklab train` run directory"
    )


def run_report(args: argparse.Namespace) -> int:
    from sinklab.experiments.report import claim_table, write_report
    from sinklab.experiments.run_report import is_run, write_run_report

    if is_run(args.dir):
        page, line = write_run_report(args.dir)
        print(line)
        print(f"report: {page}")
        return 0
    md, html, findings = write_report(args.dir)
    print(claim_table(findings))
    print(f"report: {html} and {md}")
    return 0
