"""Bad series are one clear error each, before anything is measured: what was wrong, what is accepted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sinklab.errors import SinklabError
from sinklab.measure.config import MeasureConfig
from sinklab.measure.make_tiny import make_tiny
from sinklab.trajectory.api import run_trajectory
from sinklab.trajectory.series import resolve_series

CFG = MeasureConfig(length=32, samples=2, positions=2)


def _run(args: list[str], out: Path, **kw: object) -> None:
    run_trajectory(args, "random", CFG, out, log=lambda _: None, **kw)


def test_mixed_architectures(hf_series: Path, tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    shutil.copytree(hf_series / "checkpoint-0", root / "checkpoint-0")
    make_tiny("gpt2", root / "checkpoint-10")
    with pytest.raises(
        SinklabError, match=r"checkpoint-10 is another architecture than .*model_type: 'llama' vs 'gpt2'"
    ):
        _run([str(root)], tmp_path / "out")
    assert not (tmp_path / "out" / "measured").exists()


def test_mixed_tokenizers(hf_series: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    root = tmp_path / "mixed"
    for step in (0, 10):
        shutil.copytree(hf_series / f"checkpoint-{step}", root / f"checkpoint-{step}")
    tok = AutoTokenizer.from_pretrained(root / "checkpoint-10")
    tok.add_tokens(["<new-token>"])
    tok.save_pretrained(root / "checkpoint-10")
    with pytest.raises(SinklabError, match=r"checkpoint-10 has another tokenizer than .*same token ids"):
        _run([str(root)], tmp_path / "out")


def test_no_checkpoints(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    (empty / "readme.txt").write_text("nothing here")
    with pytest.raises(
        SinklabError, match=r"holds no checkpoints; a CHECKPOINT is a model folder .*checkpoint-\*"
    ):
        resolve_series([str(empty)])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_series([str(tmp_path / "missing")])


def test_steps_twice_and_unknown_steps(hf_series: Path, tmp_path: Path) -> None:
    other = tmp_path / "b" / "checkpoint-10"
    shutil.copytree(hf_series / "checkpoint-10", other)
    with pytest.raises(SinklabError, match="step 10 is named twice"):
        resolve_series([str(hf_series), str(other)])
    plain = tmp_path / "final"
    shutil.copytree(hf_series / "checkpoint-0", plain)
    with pytest.raises(SinklabError, match=r"cannot tell the training step of .*final"):
        resolve_series([str(plain)])
    with pytest.raises(SinklabError, match="--revisions takes exactly one hub id"):
        resolve_series([str(hf_series)], revisions="step0")
    with pytest.raises(SinklabError, match="--tokens-per-step must be"):
        resolve_series([str(hf_series)], tokens_per_step=0)


def test_other_options_on_a_resumed_out(hf_series: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run([str(hf_series / "checkpoint-0")], out)
    with pytest.raises(SinklabError, match=r"measured with samples 2 \(now 3\)"):
        run_trajectory(
            [str(hf_series / "checkpoint-0")], "random", MeasureConfig(length=32, samples=3, positions=2), out
        )


def test_cli_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from sinklab.cli import main

    assert main(["trajectory", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sinklab trajectory: error:") and "holds no checkpoints" in err
