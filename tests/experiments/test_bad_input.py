"""Bad input to `reproduce` and `report`: exit 2, no traceback, a message that names what was wrong and
what is accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sinklab.cli import main


def _sweep_dir(tmp: Path, content: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "sweep.json").write_text(content)
    return tmp


CASES = [
    # (id, argv builder, words the message must contain)
    (
        "unknown suite",
        lambda t: ["reproduce", "--suite", "nope", "--out", str(t)],
        ["nope", "accepted", "loss"],
    ),
    (
        "unknown scale",
        lambda t: ["reproduce", "--suite", "loss", "--scale", "huge", "--out", str(t)],
        ["huge", "accepted", "tiny"],
    ),
    (
        "jobs -1",
        lambda t: ["reproduce", "--suite", "loss", "--scale", "micro", "--jobs", "-1", "--out", str(t)],
        ["--jobs", ">= 1"],
    ),
    (
        "jobs 0",
        lambda t: ["reproduce", "--suite", "loss", "--scale", "micro", "--jobs", "0", "--out", str(t)],
        ["--jobs", ">= 1"],
    ),
    (
        "seeds 0",
        lambda t: ["reproduce", "--suite", "loss", "--scale", "micro", "--seeds", "0", "--out", str(t)],
        ["--seeds", ">= 1"],
    ),
    ("report: not a sweep", lambda t: ["report", str(t)], ["sweep.json"]),
    (
        "report: corrupt sweep.json",
        lambda t: ["report", str(_sweep_dir(t, "{oops"))],
        ["sweep.json", "corrupt"],
    ),
    (
        "report: sweep.json a list",
        lambda t: ["report", str(_sweep_dir(t, "[1, 2]"))],
        ["sweep.json", "suites", "scale"],
    ),
]


@pytest.mark.parametrize(("argv", "words"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(tmp_path, capsys, argv, words):
    rc = main(argv(tmp_path / "d"))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def test_dry_run_into_a_closed_pipe_is_quiet(tmp_path):
    import subprocess
    import sys

    cmd = f"{sys.executable} -m sinklab.cli reproduce --suite all --scale micro --dry-run --out {tmp_path}"
    cmd += " --seeds 400 | head -1"  # 24k lines: far more than a pipe holds
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
    assert proc.stdout.strip()


def test_report_with_a_corrupt_run_still_writes(tmp_path, capsys):
    _sweep_dir(tmp_path, json.dumps({"suites": ["optimization"], "scale": "tiny"}))
    run = tmp_path / "runs" / "default"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{")
    assert main(["report", str(tmp_path)]) == 0
    assert "Unreadable runs" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--jobs", "0"], ["--jobs", ">= 1"]),
        (["--steps", "0"], ["train.steps", ">= 1"]),
        (["--set", "model.attention.kernel=nope"], ["nope", "accepted", "softmax"]),
    ],
)
def test_demo_bad_input_fails_before_any_work(tmp_path, capsys, argv, words):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *argv]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and not out.exists()
    assert "training a softmax" not in captured.out  # refused before the banner and the data preparation
    for word in words:
        assert word in captured.err, (word, captured.err)
