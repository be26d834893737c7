"""Tiny checkpoint series built locally: HF Trainer folders, a hub cache with revisions (refs -> snapshots ->
blobs, as huggingface_hub lays it out), nothing downloaded."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from sinklab.measure.make_tiny import make_tiny

STEPS = (0, 10, 100, 1000)


def make_series(
    root: Path, steps: tuple[int, ...] = STEPS, name: str = "checkpoint-{}", **sizes: int
) -> Path:
    """One tiny Llama per step (a different seed each: the weights move), named after the step."""
    for n, step in enumerate(steps):
        make_tiny("llama", root / name.format(step), seed=n, **sizes)
    return root


@pytest.fixture(scope="session")
def hf_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HF Trainer output folder: checkpoint-0 .. checkpoint-1000; checkpoint-100 says its tokens."""
    root = make_series(tmp_path_factory.mktemp("trainer"))
    state = {"global_step": 100, "num_input_tokens_seen": 51200}
    (root / "checkpoint-100" / "trainer_state.json").write_text(json.dumps(state))
    return root


def cache_revision(cache: Path, repo: str, revision: str, folder: Path) -> Path:
    """Put `folder` into a hub cache as repo@revision: blobs by content hash, the snapshot's files as
    relative symlinks to them, refs/<revision> naming the commit. Returns the snapshot folder."""
    root = cache / ("models--" + repo.replace("/", "--"))
    files = sorted(p for p in folder.iterdir() if p.is_file())
    commit = hashlib.sha1(
        "".join(hashlib.sha256(p.read_bytes()).hexdigest() for p in files).encode()
    ).hexdigest()
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (root / "blobs").mkdir(exist_ok=True)
    for path in files:
        blob = root / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        if not blob.exists():
            shutil.copyfile(path, blob)
        link = snapshot / path.name
        if not link.exists():
            os.symlink(os.path.relpath(blob, snapshot), link)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / revision).write_text(commit)
    return snapshot


@pytest.fixture(scope="session")
def hub_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folders to cache as revisions step0, step100, step200 (same tokenizer and config, other weights)."""
    return make_series(tmp_path_factory.mktemp("hub-src"), (0, 100, 200), name="step{}")


@pytest.fixture
def hub_cache(tmp_path: Path, hub_models: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh offline hub cache holding org/tiny at step0, step100 and step200."""
    cache = tmp_path / "hub"
    for step in (0, 100, 200):
        cache_revision(cache, "org/tiny", f"step{step}", hub_models / f"step{step}")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache
