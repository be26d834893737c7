"""One metrics.json: `sinklab measure` and `sinklab train` write the same schema, read by one reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sinklab.errors import SinklabError
from sinklab.measure.analysis import SCHEMA, read_metrics

SHARED = {
    "schema",
    "model",
    "length",
    "skipped",
    "backend",
    "epsilon",
    "samples",
    "sink_percent",
    "sink_percent_by_eps",
    "alpha",
    "sink_percent_by_layer",
    "mean_first_alpha",
    "analyses",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A seconds-long sinklab training run with a K bias (so its metrics.json has a sink slot)."""
    from sinklab.experiments.suites import MICRO
    from sinklab.train.command import resolve_config
    from sinklab.train.loop import train

    cache = tmp_path_factory.mktemp("cache")
    out = tmp_path_factory.mktemp("run") / "r"
    cfg = resolve_config("tiny", None, [*MICRO, f"data.cache_dir={cache}", "model.kv_bias=k"])
    train(cfg, out, preset="tiny")
    return out


def test_measure_and_train_write_one_schema(tiny_llama: Path, trained: Path, tmp_path: Path) -> None:
    from sinklab.measure.api import measure

    measure(str(tiny_llama), "random", length=16, samples=4, batch_size=2, out=tmp_path / "m", plots=False)
    measured = read_metrics(tmp_path / "m" / "metrics.json")
    training = read_metrics(trained / "metrics.json")
    for doc in (measured, training):
        assert doc["schema"] == SCHEMA
        assert set(doc) >= SHARED, SHARED - set(doc)
        assert "hidden_norm" in doc["analyses"] and "massive_activation_ratio" in doc["analyses"]
    assert training["backend"] == "sinklab model record"
    assert set(training["slot"]["sink_percent_by_eps"]) == {"0.3"}  # the K-bias slot, as measure writes it
    # Training's final measurement and `sinklab measure` of the same run on its own evaluation set agree.
    again = measure(
        str(trained), f"ids:{trained / 'eval_set.jsonl'}", length=16, samples=4, plots=False, batch_size=2
    )
    assert again.sink_percent == pytest.approx(training["sink_percent"], abs=1e-9)
    torch.testing.assert_close(
        torch.tensor(again.alpha), torch.tensor(training["alpha"], dtype=torch.float64), atol=1e-6, rtol=0
    )


def test_the_claims_read_both(tiny_llama: Path, trained: Path, tmp_path: Path) -> None:
    from sinklab.experiments.claims import RunResult
    from sinklab.measure.api import measure

    measure(str(tiny_llama), "random", length=16, samples=4, batch_size=2, out=tmp_path / "m", plots=False)
    assert RunResult.load(tmp_path / "m") is not None
    run = RunResult.load(trained)
    assert run is not None and run.slot_sink is not None


def test_older_training_files_are_read_as_schema_1(tmp_path: Path) -> None:
    legacy = {
        "model": "runs/x",
        "samples": 2,
        "length": 4,
        "skipped": 0,
        "epsilon": 0.3,
        "sink_percent": [50.0, 0, 0, 0],
        "hidden_norm": [[3.0, 1.0, 1.0, 1.0]],
        "slot_alpha": [[0.4]],
        "slot_sink_percent": 25.0,
    }
    (tmp_path / "metrics.json").write_text(json.dumps(legacy))
    doc = read_metrics(tmp_path / "metrics.json")
    assert doc["schema"] == SCHEMA and doc["analyses"]["hidden_norm"] == [[3.0, 1.0, 1.0, 1.0]]
    assert doc["slot"]["sink_percent_by_eps"] == {"0.3": 25.0} and "hidden_norm" not in doc


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not a readable"),
        ("[1]", "not a sinklab metrics"),
        ('{"schema": 99, "sink_percent": []}', "newer"),
    ],
)
def test_bad_metrics_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "metrics.json").write_text(content)
    with pytest.raises(SinklabError, match=message):
        read_metrics(tmp_path / "metrics.json")


def test_report_renders_a_single_run(trained: Path, capsys) -> None:
    """`sinklab report RUN` on one training run: Sink_k against steps, the losses and the final maps."""
    from sinklab.cli import main

    assert main(["report", str(trained)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{trained.name}: step ") and "Sink_1" in out
    page = (trained / "report.html").read_text()
    assert f"Training run {trained.name}" in page and page.count("data:image/png;base64,") == 5
