"""What `sinklab ablate --out` writes (ablations.json schema 1, CSVs, figures, one HTML page), the summary,
and `sinklab list`'s ablations section."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sinklab.cli import main


def _strict(text: str) -> dict:
    def no_constant(name: str) -> None:
        raise AssertionError(f"{name} in JSON")

    return json.loads(text, parse_constant=no_constant)


def test_cli_writes_json_csv_figures_and_html(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ab"
    argv = ["ablate", "--model", str(tiny_llama), "--input", "random", "--length", "12", "--samples", "3"]
    assert main([*argv, "--massive-threshold", "2", "--threads", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "window+sinks S=4" in printed and "StreamingLLM effect" in printed
    data = _strict((out / "ablations.json").read_text())
    assert data["schema"] == 1 and data["samples"] == 3 and data["length"] == 12
    labels = [r["label"] for r in data["ablations"]]
    assert labels == [
        "mask-sink",
        "sink-value-zero",
        "massive-zero",
        "massive-mean",
        "swap-first",
        "window",
        "window+sinks S=1",
        "window+sinks S=4",
    ]
    row = data["ablations"][0]
    assert set(row["delta"]) == {"mean", "ci_low", "ci_high", "sd", "n"} and row["delta"]["n"] == 3
    assert (
        len(row["loss_by_position"]) == 11 and len(row["sink_percent"]["0.3"]) == 5
    )  # k = 1..4, on to 4 past position 1
    assert data["baseline"]["label"] == "none" and data["baseline"]["delta"] is None
    assert data["streaming_llm"]["window"] == 3 and data["massive"]["layer"] is not None
    table = list(csv.DictReader((out / "ablations.csv").open()))
    assert [r["label"] for r in table] == ["none", *labels]
    assert (
        float(table[1]["delta_ci_low"]) <= float(table[1]["delta_loss"]) <= float(table[1]["delta_ci_high"])
    )
    assert len((out / "loss_by_position.csv").read_text().splitlines()) == 12
    for png in ("delta_loss.png", "window_loss.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "Does " in page


def test_no_plots_and_a_subset(tiny_llama: Path, tmp_path: Path) -> None:
    from sinklab.ablate.api import ablate

    res = ablate(
        str(tiny_llama), "random", ["swap-first"], length=8, samples=1, out=tmp_path / "o", plots=False
    )
    assert [r.label for r in res.rows] == ["swap-first"]
    assert res.rows[0].delta.low is None  # one sample: no interval
    assert not list((tmp_path / "o").glob("*.png"))
    assert "data:image" not in (tmp_path / "o" / "report.html").read_text()
    assert _strict((tmp_path / "o" / "ablations.json").read_text())["streaming_llm"] is None


def test_listing_and_command_names_match_the_registry() -> None:
    from sinklab.ablate import command
    from sinklab.ablate.ablations import ablation_names
    from sinklab.ablate.config import ABLATION_NAMES, DEFAULT_MASSIVE_THRESHOLD, DEFAULT_SINK_TOKENS
    from sinklab.listing import listing_text

    assert list(ABLATION_NAMES) == ablation_names()
    # The command's flags come from AblationOptions (no torch import): the defaults are the API's.
    import argparse

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    defaults = parser.parse_args(["--model", "m", "--out", "o"])
    assert defaults.massive_threshold == DEFAULT_MASSIVE_THRESHOLD
    from sinklab.measure import massive

    assert massive.DEFAULT_MASSIVE_THRESHOLD == DEFAULT_MASSIVE_THRESHOLD  # measure's and ablate's bar
    assert parser.parse_args(["--model", "m", "--out", "o", "--massive-layer", "2"]).massive_layer == 2
    assert tuple(defaults.sink_tokens) == DEFAULT_SINK_TOKENS
    text = listing_text()
    assert "ablations (sinklab ablate):" in text
    for name in ablation_names():
        assert f"  {name} " in text


def test_python_api_is_exported_without_shadowing_the_packages() -> None:
    import sinklab
    import sinklab.ablate
    import sinklab.measure
    from sinklab.ablate.api import AblateResult, ablate
    from sinklab.measure.api import measure

    assert sinklab.ablate_model is ablate and sinklab.measure_model is measure
    assert sinklab.AblateResult is AblateResult
    assert not callable(sinklab.measure) and not callable(sinklab.ablate)  # the packages stay packages
