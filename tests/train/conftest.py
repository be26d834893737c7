"""Shared tiny setup for the training tests: a ~400 KB corpus of real Python source, a 2-layer d-32 model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sinklab.train.command import resolve_config
from sinklab.train.loop import read_log, train

STEPS = 40


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted((root / "json").glob("*.py")) + sorted((root / "email").glob("*.py"))
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": p.read_text()}) + "\n" for p in files))
    return path


@pytest.fixture(scope="session")
def tiny_overrides(corpus_file, tmp_path_factory) -> list[str]:
    cache = tmp_path_factory.mktemp("cache")
    return [
        f"data.corpus={corpus_file}",
        f"data.cache_dir={cache}",
        "data.val_fraction=0.2",
        "data.vocab_size=384",
        "data.context=32",
        "data.eval_length=32",
        "data.eval_samples=10",
        "data.val_sequences=8",
        "model.n_layer=2",
        "model.n_head=2",
        "model.d_model=32",
        "model.d_ff=64",
        f"train.steps={STEPS}",
        "train.batch_size=8",
        "train.lr=3e-3",
        "train.warmup=5",
        "train.eval_every=10",
        "train.checkpoint_every=10",
        "train.threads=1",
        "train.progress=false",
    ]


@pytest.fixture(scope="session")
def base_run(tiny_overrides, tmp_path_factory) -> Path:
    """One uninterrupted single-process run that the other tests compare against."""
    out = tmp_path_factory.mktemp("runs") / "base"
    train(resolve_config(None, None, tiny_overrides), out, preset="tiny")
    return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def comparable(lines: list[dict]) -> list[dict]:
    """Log lines without wall-clock fields."""
    return [{k: v for k, v in line.items() if k != "tokens_per_s"} for line in lines]


def assert_same_run(a: Path, b: Path) -> None:
    """Same log (but wall-clock), same final metrics, bit-identical final weights."""
    assert comparable(read_log(a)) == comparable(read_log(b))
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    ma.pop("model"), mb.pop("model")
    assert json.dumps(ma) == json.dumps(mb)
    wa = (a / "model" / "model.safetensors").read_bytes()
    assert wa == (b / "model" / "model.safetensors").read_bytes()


def train_process(out: Path, sets: list[str]) -> subprocess.Popen:
    """`sinklab train --out OUT --set ...` as a child process (one torch thread), stderr piped."""
    cmd = [sys.executable, "-m", "sinklab.cli", "train", "--out", str(out), "--set", *sets]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)


def wait_for(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 180) -> None:
    """Poll until `ready()` (or fail if the child ends or time runs out first)."""
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, f"the child ended first (exit {proc.returncode}): {proc.stderr.read()}"
        assert time.time() < deadline, "timed out waiting for the child"
        time.sleep(0.01)
