"""`sinklab trajectory` on local series: each checkpoint's numbers equal `sinklab measure` on the same ids,
the figures and page are written, a second call measures nothing; every folder convention is read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sinklab.measure.api import measure
from sinklab.measure.config import MeasureConfig
from sinklab.trajectory.api import run_trajectory
from sinklab.trajectory.series import resolve_series

from .conftest import STEPS, make_series

T, SAMPLES = 80, 4
EPS = (0.05, 0.3)


def _cfg(**options: object) -> MeasureConfig:
    return MeasureConfig(length=T, samples=SAMPLES, eps=EPS, positions=4, **options)


def test_series_equals_measure_on_each_checkpoint_and_resumes(hf_series: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_trajectory([str(hf_series)], "random", _cfg(), out, tokens_per_step=512, log=lambda _: None)
    assert result.measured_now == len(STEPS) == 4
    doc = json.loads((out / "trajectory.json").read_text())
    assert [c["step"] for c in doc["checkpoints"]] == list(STEPS)
    # tokens: trainer_state.json's num_input_tokens_seen where it says, else step x --tokens-per-step
    assert [c["tokens"] for c in doc["checkpoints"]] == [0, 5120, 51200, 512000]
    for entry in doc["checkpoints"]:
        folder = hf_series / f"checkpoint-{entry['step']}"
        again = measure(
            str(folder), f"ids:{out / 'ids.jsonl'}", length=T, samples=SAMPLES, eps=EPS, positions=4
        )
        mine = entry["metrics"]
        assert mine["sink_percent_by_eps"] == again.to_dict()["sink_percent_by_eps"]
        np.testing.assert_array_equal(np.array(mine["alpha"]), again.alpha)
        np.testing.assert_array_equal(np.array(mine["sink_percent_by_layer"]), again.sink_percent_by_layer)
        np.testing.assert_array_equal(
            np.array(mine["analyses"]["hidden_norm"]), again.analyses["hidden_norm"]
        )
        assert mine["positions"] == 4 and len(mine["sink_percent"]) == 4
    for name in ("trajectory.csv", "trajectory_sink.png", "trajectory_layers.png", "trajectory_massive.png"):
        assert (out / name).stat().st_size > 0, name
    assert "When the sink emerged" in (out / "report.html").read_text()
    csv = (out / "trajectory.csv").read_text().splitlines()
    assert len(csv) == 1 + 4 and csv[0].startswith("label,step,tokens,source,sink_1_eps_0.05")
    assert set(doc["onset"]) == {"0.05", "0.3"}

    before = {p: p.stat().st_mtime_ns for p in out.glob("measured/*/metrics.json")}
    lines: list[str] = []
    second = run_trajectory([str(hf_series)], "random", _cfg(), out, tokens_per_step=512, log=lines.append)
    assert second.measured_now == 0
    assert all("done before" in line for line in lines)
    assert {p: p.stat().st_mtime_ns for p in out.glob("measured/*/metrics.json")} == before


def test_the_onset_is_the_rules(tmp_path: Path) -> None:
    """The onset is the reproduce rule's: the first checkpoint whose Sink_1 reaches 5 %."""
    from sinklab.trajectory.outputs import onset

    def entry(step: int, sink: float) -> dict:
        return {"step": step, "tokens": step * 10, "metrics": {"sink_percent_by_eps": {"0.3": [sink, 0.0]}}}

    assert onset([entry(0, 0.0), entry(10, 4.9), entry(100, 5.0), entry(1000, 30.0)], "0.3")["step"] == 100
    assert onset([entry(0, 0.0), entry(10, 1.0)], "0.3") is None


def test_litgpt_step_folders_and_explicit_folders(tmp_path: Path) -> None:
    root = make_series(tmp_path / "lit", (20, 5, 10), name="step-{:08d}")
    series = resolve_series([str(root)])
    assert [c.step for c in series] == [5, 10, 20]
    explicit = resolve_series([str(root / "step-00000020"), str(root / "step-00000005")])
    assert [c.step for c in explicit] == [5, 20] and explicit[0].tokens is None


def test_sinklab_run_checkpoints(tmp_path: Path) -> None:
    """A sinklab run trained here (4 checkpoints): step and tokens from each checkpoint's state.json."""
    import sysconfig

    from sinklab.train.command import resolve_config
    from sinklab.train.loop import train

    corpus = tmp_path / "corpus.jsonl"
    files = sorted((Path(sysconfig.get_paths()["stdlib"]) / "json").glob("*.py"))
    corpus.write_text("".join(json.dumps({"text": p.read_text()}) + "\n" for p in files))
    sets = [
        f"data.corpus={corpus}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.val_fraction=0.2",
        "data.vocab_size=300",
        "data.context=32",
        "data.eval_length=32",
        "data.eval_samples=4",
        "data.val_sequences=4",
        "model.n_layer=2",
        "model.n_head=2",
        "model.d_model=32",
        "model.d_ff=64",
        "train.steps=8",
        "train.batch_size=4",
        "train.eval_every=4",
        "train.checkpoint_every=2",
        "train.threads=1",
        "train.progress=false",
    ]
    run = tmp_path / "run"
    train(resolve_config(None, None, sets), run, preset="tiny")
    series = resolve_series([str(run)])
    assert [c.step for c in series] == [2, 4, 6, 8]
    assert [c.tokens for c in series] == [s * 4 * 32 for s in (2, 4, 6, 8)]
    out = tmp_path / "out"
    cfg = MeasureConfig(length=32, samples=3, positions=2)
    result = run_trajectory([str(run)], "random", cfg, out, log=lambda _: None)
    assert result.measured_now == 4
    doc = json.loads((out / "trajectory.json").read_text())
    assert doc["checkpoints"][0]["metrics"]["backend"] == "sinklab model record"
    assert any("sinklab's own model" in n for n in doc["checkpoints"][0]["metrics"]["notes"])


def test_cli_and_text_input(hf_series: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The command line, on text tokenised once with the series' tokenizer."""
    from sinklab.cli import main

    text = tmp_path / "docs.txt"
    text.write_text("\n".join(["the quick brown fox jumps over the lazy dog " * 6] * 5))
    out = tmp_path / "cli"
    argv = ["trajectory", str(hf_series / "checkpoint-0"), str(hf_series / "checkpoint-10")]
    argv += ["--input", f"text:{text}", "--length", "32", "--samples", "3", "--no-plots", "--out", str(out)]
    assert main(argv) == 0
    shown = capsys.readouterr().out
    assert "2 checkpoints, 2 measured now" in shown and "Sink_1 (ε = 0.3) by step" in shown
    ids = [json.loads(line)["input_ids"] for line in (out / "ids.jsonl").read_text().splitlines()]
    assert len(ids) == 3 and all(len(row) == 32 for row in ids) and ids[0][0] == 1  # the tokenizer's <s>
    assert not (out / "report.html").exists()
