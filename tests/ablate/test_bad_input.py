"""Every bad input to `sinklab ablate` is exit code 2 and one message naming the option and what it accepts,
with no traceback and no --out left behind. Options are checked before the model loads where they can be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sinklab.cli import main

BASE = ["--input", "random", "--length", "8", "--samples", "2"]
ALL = "accepted: mask-sink, sink-value-zero, massive-zero, massive-mean, swap-first, window, window+sinks"

CASES: list[Any] = [
    pytest.param(["--ablations", "nope"], ["unknown ablation 'nope'", ALL], id="unknown-ablation"),
    pytest.param(["--positions", "0"], ["--positions", ">= 1", "<= 8"], id="position-0"),
    pytest.param(["--positions", "9"], ["--positions", "<= 8"], id="position-past-length"),
    pytest.param(["--positions", "1", "1"], ["--positions", "twice"], id="position-twice"),
    pytest.param(["--window", "0"], ["--window", ">= 1"], id="window-0"),
    pytest.param(["--window", "7"], ["--window 7", "in view", "--window 6 or less"], id="window-too-wide"),
    pytest.param(["--length", "2"], ["--window 1 (the default", "--length 2"], id="window-default-too-wide"),
    pytest.param(["--sink-tokens", "0"], ["--sink-tokens", ">= 1"], id="sink-tokens-0"),
    pytest.param(["--layers", "-1"], ["--layers", ">= 0"], id="layer-negative"),
    pytest.param(["--heads", "-2"], ["--heads", ">= 0"], id="head-negative"),
    pytest.param(["--heads", "sink", "1"], ["--heads", "not both"], id="heads-sink-and-number"),
    pytest.param(["--swap-token", "-3"], ["--swap-token", "'random'"], id="swap-negative"),
    pytest.param(["--massive-threshold", "1"], ["--massive-threshold", "> 1"], id="threshold-1"),
    pytest.param(["--massive-threshold", "nan"], ["--massive-threshold", "> 1"], id="threshold-nan"),
    pytest.param(["--eps", "1.5"], ["--eps", "(0, 1)"], id="eps"),
    pytest.param(["--samples", "0"], ["--samples", ">= 1"], id="samples-0"),
    # After the model loads: against its shape and vocabulary.
    pytest.param(["--layers", "5"], ["--layers 5", "2 layers"], id="layer-out-of-range"),
    pytest.param(["--heads", "4"], ["--heads 4", "4 heads (0..3)"], id="head-out-of-range"),
    pytest.param(["--swap-token", "400"], ["--swap-token 400", "vocabulary"], id="swap-outside-vocab"),
]


@pytest.mark.parametrize(("args", "keywords"), CASES)
def test_bad_input_exits_2_with_a_clear_message(
    args: list[str], keywords: list[str], tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "out"
    argv = ["ablate", "--model", str(tiny_llama), *BASE, *args, "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sinklab ablate: error: ") and "Traceback" not in err
    for word in keywords:
        assert word in err, err
    assert not (tmp_path / "new").exists()  # --out was removed again (or never made)


def test_a_non_integer_option_is_an_argparse_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ablate", "--model", "m", "--positions", "one", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "expected an integer, got 'one'" in capsys.readouterr().err
