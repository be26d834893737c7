"""What `sinklab measure --out` leaves behind: the summary names what was written; --out is checked before
the model loads; Ctrl-C (or a crash) never leaves a partial file or a stale temporary one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import sinklab.io
from sinklab.cli import main
from sinklab.measure import api, opening


def _argv(model: Path, out: Path, *extra: str) -> list[str]:
    return ["measure", "--model", str(model), "--length", "8", "--samples", "2", "--out", str(out), *extra]


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_summary_names_what_was_written(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_argv(tiny_llama, tmp_path / "a", "--no-plots")) == 0
    text = capsys.readouterr().out
    assert "wrote metrics.json + CSV tables + report.html to" in text and "plot" not in text
    assert not list((tmp_path / "a").glob("*.png"))
    assert "layers and heads count from 0" in text

    assert main(_argv(tiny_llama, tmp_path / "b")) == 0
    assert "wrote metrics.json + CSV tables + PNG plots + report.html to" in capsys.readouterr().out
    assert len(list((tmp_path / "b").glob("*.png"))) == 4
    page = (tmp_path / "b" / "report.html").read_text()
    # one page: the model's name (never its path), the headline table, the figures embedded
    assert f"Attention sink of {tiny_llama.name}" in page and str(tiny_llama) not in page.split("<p>")[0]
    assert page.count("data:image/png;base64,") == 4 and "Sink<sub>1</sub>" in page


def test_out_is_checked_before_the_model_loads(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_loading(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(opening, "load_model", no_loading)
    taken = tmp_path / "file.txt"
    taken.write_text("mine")
    assert main(_argv(tiny_llama, taken)) == 2
    assert "existing file" in capsys.readouterr().err and taken.read_text() == "mine"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    assert main(_argv(tiny_llama, run)) == 2
    assert "different --out" in capsys.readouterr().err and (run / "metrics.json").read_text() == "{}"


def test_interrupt_while_measuring_leaves_no_out(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "observe", interrupted)
    out = tmp_path / "new" / "out"
    assert main(_argv(tiny_llama, out)) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "new").exists()  # both folders were made for this run and are gone again


@pytest.mark.parametrize("calls_before", [0, 3, 7])
def test_interrupt_while_writing_keeps_whole_files(
    calls_before: int,
    tiny_llama: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C at the n-th file replaced: every file is either the old or the new one, whole, no temporary
    file is left, and metrics.json (written last) is still the earlier run's."""
    out = tmp_path / "out"
    assert main(_argv(tiny_llama, out, "--input", "random:1")) == 0
    before = _listing(out)
    replace = os.replace
    calls = []

    def replace_then_interrupt(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) > calls_before:
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(sinklab.io.os, "replace", replace_then_interrupt)
    assert main(_argv(tiny_llama, out, "--input", "random:2")) == 130
    monkeypatch.undo()
    assert "Traceback" not in capsys.readouterr().err
    after = _listing(out)
    assert set(after) == set(before)  # no temporary file is left
    assert after["metrics.json"] == before["metrics.json"]
    assert json.loads(after["metrics.json"])["input"] == "random:1"
    changed = [name for name in after if after[name] != before[name]]
    assert len(changed) <= calls_before
