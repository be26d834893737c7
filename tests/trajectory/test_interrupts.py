"""A trajectory killed (SIGKILL) or stopped (SIGTERM) once its first checkpoint is measured loses at most the
checkpoint in progress; the same command then measures only the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sinklab.measure.config import MeasureConfig
from sinklab.trajectory.api import run_trajectory

from .conftest import make_series

STEPS = (0, 1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def six(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_series(tmp_path_factory.mktemp("six"), STEPS, layers=4)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_trajectory_resumes_with_the_rest(six: Path, tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "out"
    argv = [
        str(six),
        "--input",
        "random",
        "--length",
        "512",
        "--samples",
        "8",
        "--no-plots",
        "--out",
        str(out),
    ]
    cmd = [sys.executable, "-m", "sinklab.cli", "trajectory", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = out / "measured" / "step_000000000" / "metrics.json"
    deadline = time.time() + 180
    while not first.exists():
        assert proc.poll() is None, (
            f"ended first ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}"
        )
        assert time.time() < deadline, "timed out waiting for the first checkpoint"
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and "interrupted; finished work is kept" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    done = sorted(p.parent.name for p in out.glob("measured/*/metrics.json"))
    assert done and len(done) < len(STEPS), done
    for path in out.glob("measured/*/metrics.json"):  # whole files only (atomic writes)
        json.loads(path.read_text())
    if sig == signal.SIGTERM:  # Ctrl-C's path: temporary files are removed too
        assert not list(out.rglob(".*.tmp")), "a temporary file was left"
    lines: list[str] = []
    cfg = MeasureConfig(length=512, samples=8, positions=4)
    result = run_trajectory([str(six)], "random", cfg, out, log=lines.append)
    assert result.measured_now == len(STEPS) - len(done)
    assert sum("done before" in line for line in lines) == len(done)
    assert len(result.checkpoints) == len(STEPS)
