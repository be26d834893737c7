"""`reproduce` under SIGTERM, kill -9 of the parent and a shadowing `sinklab/` folder: no trainer outlives
it, and the same call finishes the work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

LONG = "train.steps=100000"  # a micro run that would take minutes: it is still training when stopped


def _script(out: Path, steps: str) -> str:
    return f"""
import dataclasses
from sinklab.experiments.suites import SCALES, RunSpec
from sinklab.experiments.sweep import run_sweep
scale = dataclasses.replace(SCALES["micro"], base=(*SCALES["micro"].base, "train.eval_every=50",
                            "train.checkpoint_every=50", {steps!r}))
run_sweep([RunSpec("a"), RunSpec("b", ("train.lr=0.002",))], scale, {str(out)!r}, jobs=2, progress=False)
"""


def _trainers(out: Path) -> list[int]:
    """pids of live processes whose command line names this sweep's runs."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if str(out) in cmdline and " train " in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def _start(out: Path, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _script(out, LONG)], env=env)
    assert _wait_for(lambda: len(_trainers(out)) == 2, 240), "the two trainers did not start"
    return proc


@pytest.fixture
def env(tmp_path_factory):
    return dict(os.environ, SINKLAB_CACHE=str(tmp_path_factory.getbasetemp() / "sinklab-cache"))


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; the parent-death signal is Linux's")
@pytest.mark.parametrize("how", ["sigterm", "sigkill-parent"])
def test_no_trainer_outlives_reproduce(tmp_path, env, how):
    out = tmp_path / "sweep"
    proc = _start(out, env)
    os.kill(proc.pid, signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    proc.wait(timeout=60)
    assert _wait_for(lambda: not _trainers(out), 60), f"trainers left running: {_trainers(out)}"
    if how == "sigterm":
        assert proc.returncode != 0  # interrupted, not finished
    # Nothing half-written: no temporary checkpoint folders remain.
    assert not list(out.glob("runs/*/checkpoints/.*"))
    # The same call (shorter, so the test ends) finishes both runs from where they were.
    for name in ("a", "b"):
        config = out / "runs" / name / "config.json"
        if config.exists():  # steps may be changed on resume; shorten them to finish quickly
            data = json.loads(config.read_text())
            data["train"]["steps"] = 4
            config.write_text(json.dumps(data))
    done = subprocess.run([sys.executable, "-c", _script(out, "train.steps=4")], env=env, timeout=600)
    assert done.returncode == 0
    assert all((out / "runs" / n / "metrics.json").exists() for n in ("a", "b"))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="python -P is 3.11+")
def test_children_import_the_installed_package_from_any_folder(tmp_path, env):
    shadow = tmp_path / "checkout"
    (shadow / "sinklab").mkdir(parents=True)
    (shadow / "sinklab" / "__init__.py").write_text("raise ImportError('the wrong sinklab')\n")
    out = tmp_path / "sweep"
    code = _script(out, "train.steps=4")
    # The parent as the `sinklab` console script runs it (-P: its folder is not on sys.path); the children
    # must not pick up ./sinklab either.
    proc = subprocess.run(
        [sys.executable, "-P", "-c", code],
        cwd=shadow,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "runs" / "a" / "metrics.json").exists()
