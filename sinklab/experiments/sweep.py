"""Run a list of training runs as `sinklab train` subprocesses: skip finished ones, resume interrupted ones,
run several at once (one torch thread each), and say how long it will take before starting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from sinklab.experiments.suites import RunSpec, Scale

FINISHED, RESUME, FRESH = "finished", "resume", "fresh"


def run_state(run_dir: Path) -> str:
    """finished: the final metrics.json exists; resume: a checkpoint exists; fresh: nothing usable."""
    if (run_dir / "metrics.json").exists():
        return FINISHED
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in checkpoints.iterdir()):
        return RESUME
    return FRESH


def train_command(spec: RunSpec, scale: Scale, run_dir: Path, state: str) -> list[str]:
    base = [sys.executable, "-m", "sinklab.cli", "train"]
    if state == RESUME:
        return [*base, "--resume", str(run_dir)]
    sets = [arg for item in (*scale.base, *spec.overrides) for arg in ("--set", item)]
    return [*base, "--preset", scale.preset, *sets, "--out", str(run_dir)]


@dataclass
class SweepOutcome:
    finished: list[str]
    skipped: list[str]  # already finished before this sweep
    failed: dict[str, str]  # name -> log file
    seconds: float


def estimate_seconds(specs: list[RunSpec], scale: Scale, out: Path, jobs: int) -> float | None:
    """From the throughput of runs already logged under `out` (None when nothing has run yet)."""
    rates = []
    for log in (out / "runs").glob("*/log.jsonl"):
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        timed = [x for x in lines if "elapsed" in x and x.get("step")]
        if timed:
            rates.append(timed[-1]["elapsed"] / timed[-1]["step"])
    if not rates:
        return None
    steps = _steps(scale)
    return sum(rates) / len(rates) * steps * len(specs) / max(jobs, 1)


def _steps(scale: Scale) -> int:
    from sinklab.config import apply_overrides
    from sinklab.train.presets import get_run_preset

    return apply_overrides(get_run_preset(scale.preset), list(scale.base)).train.steps


def run_sweep(
    specs: list[RunSpec], scale: Scale, out: Path, jobs: int = 1, progress: bool = True
) -> SweepOutcome:
    out = Path(out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    states = {s.name: run_state(out / "runs" / s.name) for s in specs}
    skipped = [n for n, st in states.items() if st == FINISHED]
    todo = [s for s in specs if states[s.name] != FINISHED]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    running: dict[str, tuple[subprocess.Popen, Path]] = {}
    finished: list[str] = []
    failed: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc="runs", unit="run", disable=not progress or not todo)
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
                    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                running[spec.name] = (proc, log_path)
            time.sleep(0.5)
            for name, (proc, log_path) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                bar.update(1)
                if proc.returncode == 0 and run_state(out / "runs" / name) == FINISHED:
                    finished.append(name)
                else:
                    failed[name] = str(log_path)
                    bar.write(f"run {name} failed (exit {proc.returncode}); see {log_path}")
    finally:
        for proc, _ in running.values():
            proc.terminate()
        bar.close()
    return SweepOutcome(finished, skipped, failed, time.monotonic() - started)
