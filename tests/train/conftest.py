"""Shared tiny setup for the training tests: a ~400 KB corpus of real Python source, a 2-layer d-32 model."""

from __future__ import annotations

import json
import shutil
import sysconfig
from pathlib import Path

import pytest

from sinklab.train.command import resolve_config
from sinklab.train.loop import train

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
