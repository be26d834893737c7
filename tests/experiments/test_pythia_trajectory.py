"""pythia-trajectory: without the hub the suite says it did not run; the verdict is the one rule's."""

from __future__ import annotations

from pathlib import Path

from sinklab.experiments.pythia_trajectory import SeriesRow, judge, measure_pythia_trajectories


def test_offline_the_suite_is_not_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    rows, verdict = measure_pythia_trajectories(tmp_path, ("EleutherAI/pythia-14m",), {"random": "random"}, 2)
    assert rows[0].not_run and "not in the local hub cache" in rows[0].not_run
    assert verdict["verdict"] == "not run"
    text = (tmp_path / "pythia_trajectory.md").read_text()
    assert text.startswith("**suite pythia-trajectory: not run**")
    assert "EleutherAI/pythia-14m (random): not run" in text


def _row(model: str, values: list[float]) -> SeriesRow:
    steps = [0, 1000, 2000, 4000, 8000][: len(values)]
    return SeriesRow(model, "natural", Path("."), sink_1=list(zip(steps, values, strict=True)))


def test_the_rule_judges_emergence_over_the_models() -> None:
    rising = [_row(f"m{i}", [0.0, 2.0 + i, 20.0 + i, 30.0 + i, 31.0 + 2 * i]) for i in range(3)]
    found = judge(rising)
    assert found["verdict"] == "reproduced", found
    assert "default onset step 2000" in found["onset"]
    flat = [_row(f"m{i}", [0.0, 0.1, 0.2 * i, 0.1, 0.0]) for i in range(3)]
    assert judge(flat)["verdict"] == "contradicted"  # Pythia trained past the paper's budget: absence counts
