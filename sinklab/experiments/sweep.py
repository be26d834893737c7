"""Run a list of training runs as `sinklab train` subprocesses: skip finished ones, resume interrupted ones,
run several at once (one torch thread each), and say how long it will take before starting."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sinklab.experiments.suites import RunSpec, Scale, scale_config

FINISHED, RESUME, FRESH = "finished", "resume", "fresh"


def run_state(run_dir: Path) -> str:
    """finished: the final metrics.json exists; resume: a checkpoint exists; fresh: nothing usable."""
    if (run_dir / "metrics.json").exists():
        return FINISHED
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in checkpoints.iterdir()):
        return RESUME
    return FRESH


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def config_differences(run_dir: Path, spec: RunSpec, scale: Scale) -> list[str]:
    """Settings in which the run directory's config.json differs from what `spec` at `scale` asks for.

    Runs are found by name, so a run left from an older suite definition, another scale or a hand-made
    run must not be taken as this one.
    """
    from sinklab.config import to_dict
    from sinklab.train.config import HOW_NOT_WHAT, RESOLVED_AT_TRAINING, RUN_SECTIONS

    path = run_dir / "config.json"
    if not path.is_file():
        return []
    config = scale_config(scale, spec.overrides)
    expected = _flatten(json.loads(json.dumps(to_dict(config))))  # tuples as JSON lists, like the saved file
    saved_file = json.loads(path.read_text())
    saved = _flatten({k: v for k, v in saved_file.items() if k in RUN_SECTIONS})
    missing = object()
    ignored = RESOLVED_AT_TRAINING + HOW_NOT_WHAT
    return [
        f"{key} = {saved.get(key, missing)!r} there, {expected.get(key, missing)!r} here"
        for key in sorted(set(saved) | set(expected))
        if saved.get(key, missing) != expected.get(key, missing) and key not in ignored
    ]


def stale_runs(specs: list[RunSpec], scale: Scale, out: Path) -> dict[str, list[str]]:
    """name -> differences, for every run directory under out/runs whose settings are not the spec's."""
    found = {s.name: config_differences(Path(out) / "runs" / s.name, s, scale) for s in specs}
    return {name: diffs for name, diffs in found.items() if diffs}


def check_not_stale(
    specs: list[RunSpec], scale: Scale, out: Path, stale: dict[str, list[str]] | None = None
) -> None:
    """Raise, naming the differences, if a run directory holds another run (`stale`: from stale_runs)."""
    stale = stale_runs(specs, scale, out) if stale is None else stale
    if stale:
        lines = [f"  {name}: {'; '.join(d[:3])}{' ...' if len(d) > 3 else ''}" for name, d in stale.items()]
        raise ValueError(
            f"{len(stale)} run(s) in {out}/runs were trained with other settings than this suite at scale "
            f"{scale.name!r} asks for:\n" + "\n".join(lines) + "\nremove those run directories (and their "
            "logs) to train them again, or pick another --out"
        )


def train_command(spec: RunSpec, scale: Scale, run_dir: Path, state: str) -> list[str]:
    run_dir = Path(run_dir).resolve()  # children run in a neutral working directory
    base = [sys.executable, "-m", "sinklab.cli", "train"]
    if state == RESUME:
        return [*base, "--resume", str(run_dir)]
    sets = [arg for item in (*scale.base, *spec.overrides) for arg in ("--set", item)]
    return [*base, "--preset", scale.preset, *sets, "--out", str(run_dir)]


def die_with_parent() -> None:
    """In the child, before exec: its own process group (so signals reach a trainer and its torchrun
    workers together), and SIGTERM when the parent dies, even by kill -9 (Linux)."""
    os.setpgid(0, 0)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


def start_child(cmd: list[str], log: Any, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, preexec_fn=die_with_parent
    )


def stop_children(procs: list[subprocess.Popen], grace: float = 30.0) -> None:
    """SIGTERM each child's process group (a trainer stops cleanly, keeping its checkpoints), then SIGKILL
    whatever is still running after `grace` seconds; returns once none is left."""
    alive = [p for p in procs if p.poll() is None]
    for proc in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in alive:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def terminate_as_interrupt() -> Any:
    """SIGTERM (timeout, Slurm, systemd) handled like Ctrl-C: the sweep's finally stops every child."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class SweepOutcome:
    finished: list[str]
    skipped: list[str]  # already finished before this sweep
    failed: dict[str, str]  # name -> log file
    seconds: float


def _seconds_per_step(log: Path) -> float | None:
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    rates = [
        x["tokens"] / x["step"] / x["tokens_per_s"] for x in lines if x.get("tokens_per_s") and x.get("step")
    ]
    return sum(rates) / len(rates) if rates else None


def estimate_seconds(specs: list[RunSpec], scale: Scale, out: Path, jobs: int) -> float | None:
    """From the training speed logged by runs already under `out` (None when nothing has run yet)."""
    rates = [r for log in (out / "runs").glob("*/log.jsonl") if (r := _seconds_per_step(log)) is not None]
    if not rates:
        return None
    steps = sum(step_equivalents(spec, scale) for spec in specs)
    return sum(rates) / len(rates) * steps / max(jobs, 1)


def scale_estimate_seconds(specs: list[RunSpec], scale: Scale, jobs: int) -> float | None:
    """From the scale's measured speed (Scale.seconds_per_step), before any run has logged its own."""
    if scale.seconds_per_step is None:
        return None
    return scale.seconds_per_step * sum(step_equivalents(spec, scale) for spec in specs) / max(jobs, 1)


def run_steps(spec: RunSpec, scale: Scale) -> int:
    return scale_config(scale, spec.overrides).train.steps


def step_equivalents(spec: RunSpec, scale: Scale) -> float:
    """The run's steps in steps of the scale's batch: a step of half the batch takes about half the time, so
    a token-matched batch-size run costs what the default does, not twice or half of it."""
    train = scale_config(scale, spec.overrides).train
    return train.steps * train.batch_size / scale.batch_size


def logged_step(run_dir: Path) -> int:
    log = run_dir / "log.jsonl"
    if not log.exists():
        return 0
    lines = [x for x in log.read_text().splitlines() if x.strip()]
    try:
        return int(json.loads(lines[-1])["step"]) if lines else 0
    except (json.JSONDecodeError, KeyError):
        return 0  # a line being written right now


def run_sweep(
    specs: list[RunSpec], scale: Scale, out: Path, jobs: int = 1, progress: bool = True
) -> SweepOutcome:
    """Train every unfinished run, `jobs` at a time; Ctrl-C or SIGTERM stops every child cleanly (they keep
    their checkpoints) and the same call later finishes the work."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs must be an integer >= 1 (runs at once), got {jobs!r}")
    with terminate_as_interrupt():
        return _run_sweep(specs, scale, Path(out), jobs, progress)


def _last_error(log_path: Path) -> str:
    """The child's own error line (`sinklab train: error: ...`), if it printed one."""
    lines = [x for x in log_path.read_text(errors="replace").splitlines() if "error:" in x]
    return f": {lines[-1].split('error:', 1)[1].strip()}" if lines else ""


def _run_sweep(specs: list[RunSpec], scale: Scale, out: Path, jobs: int, progress: bool) -> SweepOutcome:
    check_not_stale(specs, scale, out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    states = {s.name: run_state(out / "runs" / s.name) for s in specs}
    skipped = [n for n, st in states.items() if st == FINISHED]
    todo = [s for s in specs if states[s.name] != FINISHED]
    # PYTHONSAFEPATH: a `sinklab/` folder in the working directory must not shadow the installed package.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONSAFEPATH="1")
    running: dict[str, tuple[subprocess.Popen, Path]] = {}
    finished: list[str] = []
    failed: dict[str, str] = {}
    # One bar over the optimizer steps of every run, read from the runs' logs (evaluation points).
    total = {s.name: run_steps(s, scale) for s in todo}
    bar = tqdm(
        total=sum(total.values()),
        desc=f"{len(todo)} run(s)",
        unit="step",
        disable=not progress or not todo,
        mininterval=1 if sys.stderr.isatty() else 60,  # a log file gets a line a minute, not every second
    )
    queue = list(todo)
    try:
        while queue or running:
            while queue and len(running) < jobs:
                spec = queue.pop(0)
                run_dir = out / "runs" / spec.name
                log_path = out / "logs" / f"{spec.name}.log"
                with log_path.open("a") as log:
                    cmd = train_command(spec, scale, run_dir, states[spec.name])
                    log.write("$ " + " ".join(cmd) + "\n")
                    log.flush()
                    proc = start_child(cmd, log, env, cwd=out.resolve())
                running[spec.name] = (proc, log_path)
            time.sleep(1.0)
            done_steps = sum(min(logged_step(out / "runs" / n), total[n]) for n in total)
            bar.update(done_steps - bar.n)
            for name, (proc, log_path) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                if proc.returncode == 0 and run_state(out / "runs" / name) == FINISHED:
                    finished.append(name)
                else:
                    failed[name] = str(log_path)
                    bar.write(
                        f"run {name} failed (exit {proc.returncode}{_last_error(log_path)}); see {log_path}"
                    )
    finally:
        stop_children([proc for proc, _ in running.values()])
        bar.close()
    return SweepOutcome(finished, skipped, failed, time.monotonic() - started)
