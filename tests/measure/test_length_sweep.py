"""A one-pass length sweep (--length 16 32 64): every T' from the first T' queries and keys of one forward
at the largest T, equal to a separate measurement at T' (causal models), with the Fig. 3 figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import sinklab
from sinklab.cli import main
from sinklab.measure.config import MeasureConfig
from sinklab.measure.outputs import summary


def test_one_pass_equals_separate_measurements(tiny_llama: Path, tmp_path: Path) -> None:
    ids = torch.randint(3, 250, (3, 24), generator=torch.Generator().manual_seed(5))
    swept = sinklab.measure_model(str(tiny_llama), ids, length=[8, 16, 24], eps=(0.1, 0.2), out=tmp_path)
    sweep = swept.length_sweep
    assert sweep["lengths"] == [8, 16, 24] and swept.length == 24
    for i, t in enumerate(sweep["lengths"]):
        alone = sinklab.measure_model(str(tiny_llama), ids[:, :t], eps=(0.1, 0.2), analyses=False)
        np.testing.assert_allclose(sweep["mean_first_alpha"][i], alone.mean_first_alpha, atol=1e-6)
        for e in ("0.1", "0.2"):
            np.testing.assert_allclose(sweep["sink_percent_by_eps"][e][i], alone.sink_percent_by_eps[e][:4])
    assert json.loads((tmp_path / "metrics.json").read_text())["length_sweep"]["lengths"] == [8, 16, 24]
    assert (tmp_path / "sink_by_length.png").exists()
    assert "length sweep (one forward at T=24)" in summary(swept)


def test_the_flag_takes_several_lengths(tiny_llama: Path, tmp_path: Path) -> None:
    argv = [
        "measure",
        "--model",
        str(tiny_llama),
        "--length",
        "8",
        "16",
        "--samples",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["length"] == 16 and data["length_sweep"]["lengths"] == [8, 16]
    one = MeasureConfig(length=[32])
    assert one.length == 32 and one.sweep is None
