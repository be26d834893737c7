"""Hub revisions from a local cache built here (offline), and dropping only what this command downloaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sinklab.errors import SinklabError
from sinklab.measure.config import MeasureConfig
from sinklab.trajectory.api import run_trajectory
from sinklab.trajectory.series import expand_revisions

from .conftest import cache_revision

CFG = MeasureConfig(length=64, samples=3, positions=4)


def test_revisions_from_an_offline_cache(hub_cache: Path, tmp_path: Path) -> None:
    before = sorted(p.relative_to(hub_cache) for p in hub_cache.rglob("*"))
    out = tmp_path / "out"
    result = run_trajectory(
        ["org/tiny"], "random", CFG, out, revisions="step0:200:100", tokens_per_step=1000, log=lambda _: None
    )
    assert result.measured_now == 3
    doc = json.loads((out / "trajectory.json").read_text())
    assert [(c["source"], c["step"], c["tokens"]) for c in doc["checkpoints"]] == [
        ("org/tiny@step0", 0, 0),
        ("org/tiny@step100", 100, 100000),
        ("org/tiny@step200", 200, 200000),
    ]
    # cached before the command: nothing of it is dropped
    assert sorted(p.relative_to(hub_cache) for p in hub_cache.rglob("*")) == before
    single = run_trajectory(["org/tiny@step100"], "random", CFG, tmp_path / "one", log=lambda _: None)
    assert single.checkpoints[0].metrics["sink_percent"] == doc["checkpoints"][1]["metrics"]["sink_percent"]


def test_unknown_revision_is_refused_before_measuring(hub_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(
        SinklabError, match=r"unknown revision 'step999' of org/tiny .*step0, step100, step200"
    ):
        run_trajectory(["org/tiny"], "random", CFG, tmp_path / "o", revisions="step0,step999")
    assert not (tmp_path / "o" / "measured").exists()


@pytest.mark.parametrize("keep", [False, True])
def test_downloads_are_dropped_but_not_what_was_cached(
    hub_cache: Path, hub_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: bool
) -> None:
    """step0 was cached before; step100 and step200 'download' (a stand-in that writes the cache as the
    hub client would): after measuring they are gone unless --keep-downloads, step0 and the blobs it
    shares with them stay."""
    import huggingface_hub
    from huggingface_hub import constants

    for step in (100, 200):
        (hub_cache / "models--org--tiny" / "refs" / f"step{step}").unlink()
    for snapshot in (hub_cache / "models--org--tiny" / "snapshots").iterdir():
        if snapshot.name != (hub_cache / "models--org--tiny" / "refs" / "step0").read_text():
            shutil.rmtree(snapshot)
    fetched: list[str] = []

    def fake_download(repo_id: str, *, revision: str, cache_dir: Path, **_: object) -> str:
        fetched.append(revision)
        return str(cache_revision(Path(cache_dir), repo_id, revision, hub_models / revision))

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    out = tmp_path / "out"
    result = run_trajectory(
        ["org/tiny"], "random", CFG, out, revisions="step0,step100,step200", keep_downloads=keep, log=print
    )
    assert result.measured_now == 3 and fetched == ["step100", "step200"]
    refs = sorted(p.name for p in (hub_cache / "models--org--tiny" / "refs").iterdir())
    assert refs == (["step0", "step100", "step200"] if keep else ["step0"])
    step0 = (
        hub_cache
        / "models--org--tiny"
        / "snapshots"
        / (hub_cache / "models--org--tiny/refs/step0").read_text()
    )
    assert all(p.resolve().is_file() for p in step0.iterdir())  # shared blobs (tokenizer, config) kept
    assert json.loads((out / "downloads.json").read_text()) == (
        [] if not keep else ["org/tiny@step100", "org/tiny@step200"]
    )


def test_revision_ranges() -> None:
    assert expand_revisions("step0:3000:1000") == ["step0", "step1000", "step2000", "step3000"]
    assert expand_revisions("step0,step1:16:x2,step1000") == [
        "step0",
        *(f"step{2**i}" for i in range(5)),
        "step1000",
    ]
    for bad in ("step0:10", "step5:1:1", "step0:8:x2", "a:b:c"):
        with pytest.raises(SinklabError, match="--revisions range"):
            expand_revisions(bad)
