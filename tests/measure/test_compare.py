"""`sinklab compare DIR...`: measurements side by side (a table, and a figure overlaying them)."""

from __future__ import annotations

from pathlib import Path

import sinklab
from sinklab.cli import main


def test_compare_overlays_measurements(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    for t in (8, 16):
        sinklab.measure_model(
            str(tiny_llama), "random", length=t, samples=2, out=tmp_path / f"m{t}", plots=False
        )
    assert main(["compare", str(tmp_path / "m8"), str(tmp_path / "m16"), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert f"{tiny_llama.name}, T=8" in out and f"{tiny_llama.name}, T=16" in out and "Sink_1" in out
    assert str(tiny_llama) not in out  # the model's name, never its path
    assert (tmp_path / "c" / "compare.png").exists() and (tmp_path / "c" / "compare.csv").exists()
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert "no metrics.json" in capsys.readouterr().err
