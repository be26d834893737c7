"""A short CPU run, its run directory, exact resume (also after kill -9) and checkpoint errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sinklab.cli import main
from sinklab.train.checkpoint import list_checkpoints
from sinklab.train.command import resolve_config
from sinklab.train.loop import read_log, train
from tests.train.conftest import STEPS, assert_same_run, comparable, copy_run

LOG_FIELDS = {
    "step",
    "tokens",
    "lr",
    "train_loss",
    "val_loss",
    "sink_percent",
    "mean_first_alpha",
    "sink_percent_by_layer",
    "sink_1",
}


def test_loss_falls_and_log_has_every_field(base_run):
    log = read_log(base_run)
    assert [line["step"] for line in log] == [0, 10, 20, 30, 40]
    for line in log:
        assert set(line) >= LOG_FIELDS
        assert len(line["sink_percent"]) == 10 and len(line["sink_percent_by_layer"]) == 2
        assert 1 / 32 <= line["mean_first_alpha"] <= 1
    assert log[0]["train_loss"] is None and log[0]["lr"] == 0.0
    assert log[-1]["train_loss"] < log[1]["train_loss"] - 0.3
    assert log[-1]["val_loss"] < log[0]["val_loss"] - 0.5
    assert log[-1]["tokens"] == STEPS * 8 * 32


def test_run_directory_contract(base_run):
    from transformers import AutoTokenizer

    from sinklab.model import load_pretrained

    cfg = json.loads((base_run / "config.json").read_text())
    assert {"model", "data", "train", "sinklab_version", "git_rev", "seed", "corpus_fingerprint"} <= set(cfg)
    assert (
        cfg["model"]["vocab_size"] % 64 == 0 and cfg["model"]["vocab_size"] >= cfg["tokenizer"]["vocab_size"]
    )
    tok = AutoTokenizer.from_pretrained(base_run / "tokenizer")
    assert tok.eos_token_id == cfg["tokenizer"]["eos_id"]
    model = load_pretrained(base_run / "model")
    assert model.config.n_layer == 2
    assert [p.name for p in list_checkpoints(base_run)] == [f"step_{s:07d}" for s in (10, 20, 30, 40)]
    final = load_pretrained(list_checkpoints(base_run)[-1])
    for (name, a), b in zip(model.state_dict().items(), final.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    ids = [json.loads(line)["input_ids"] for line in (base_run / "eval_set.jsonl").read_text().splitlines()]
    assert np.array(ids).shape == (10, 32)
    metrics = json.loads((base_run / "metrics.json").read_text())
    assert metrics["samples"] == 10 and metrics["length"] == 32 and metrics["epsilon"] == 0.3
    assert np.array(metrics["alpha"]).shape == (2, 2, 32)
    assert len(metrics["sink_percent_by_layer"]) == 2 and "hidden_norm" in metrics["analyses"]
    assert metrics["schema"] == 1 and metrics["backend"] == "sinklab model record"
    assert metrics["mean_first_alpha"] == pytest.approx(read_log(base_run)[-1]["mean_first_alpha"], rel=1e-5)
    assert list((base_run / "tb").glob("events.out.tfevents.*"))


def test_half_then_resume_is_identical(base_run, tmp_path):
    run = copy_run(base_run, tmp_path / "run")
    for ckpt in list_checkpoints(run)[2:]:  # keep step 10 and 20 = N/2
        shutil.rmtree(ckpt)
    shutil.rmtree(run / "model")
    (run / "metrics.json").unlink()
    assert main(["train", "--resume", str(run)]) == 0
    assert_same_run(base_run, run)


def test_kill_9_then_resume(base_run, tiny_overrides, tmp_path):
    out = tmp_path / "killed"
    # A longer run with the same constant schedule: its first 40 steps equal the base run's.
    sets = [*tiny_overrides, "train.steps=100000"]
    cmd = [sys.executable, "-m", "sinklab.cli", "train", "--out", str(out)]
    for item in sets:
        cmd += ["--set", item]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list_checkpoints(out) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    latest = int(list_checkpoints(out)[-1].name.split("_")[1])
    target = max(STEPS, latest + 10)
    assert (
        main(
            ["train", "--resume", str(out), "--set", f"train.steps={target}", "--set", "train.progress=false"]
        )
        == 0
    )
    base, resumed = comparable(read_log(base_run)), comparable(read_log(out))
    assert [line["step"] for line in resumed] == list(range(0, target + 1, 10))
    assert resumed[: len(base)] == base


@pytest.fixture
def broken(base_run, tmp_path) -> Path:
    return copy_run(base_run, tmp_path / "broken")


def _resume_error(run: Path, capsys) -> str:
    assert main(["train", "--resume", str(run)]) == 2
    return capsys.readouterr().err


def test_corrupt_weights_are_a_clear_error(broken, capsys):
    weights = list_checkpoints(broken)[-1] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert "corrupt" in _resume_error(broken, capsys)


def test_missing_state_is_a_clear_error(broken, capsys):
    (list_checkpoints(broken)[-1] / "state.json").unlink()
    assert "incomplete or corrupt" in _resume_error(broken, capsys)


def test_corrupt_optimizer_is_a_clear_error(broken, capsys):
    (list_checkpoints(broken)[-1] / "optimizer.pt").write_bytes(b"not a torch file")
    assert "optimizer.pt or rng.pt is corrupt" in _resume_error(broken, capsys)


def test_other_model_is_a_clear_error(broken, capsys):
    path = list_checkpoints(broken)[-1] / "config.json"
    meta = json.loads(path.read_text())
    meta["config"]["n_head"] = 4
    path.write_text(json.dumps(meta))
    err = _resume_error(broken, capsys)
    assert "does not match" in err or "different model" in err


def test_resume_without_a_checkpoint_restarts_from_step_0(base_run, broken, capsys):
    for name in ("checkpoints", "model"):  # tb/ stays: the restart must replace its events
        shutil.rmtree(broken / name)
    (broken / "metrics.json").unlink()
    with (broken / "log.jsonl").open("a") as f:
        f.write('{"step": 10, "tokens": 25')  # a line a kill cut short
    assert main(["train", "--resume", str(broken)]) == 0
    assert "no checkpoint yet" in capsys.readouterr().err
    assert_same_run(base_run, broken)
    assert len(list((broken / "tb").glob("events.out.tfevents.*"))) == 1
    assert main(["train", "--resume", str(broken / "nothing")]) == 2


def test_out_with_other_settings_is_refused_naming_them(base_run, tiny_overrides, capsys):
    assert main(["train", "--out", str(base_run), "--set", *tiny_overrides, "train.lr=1e-3"]) == 2
    err = capsys.readouterr().err
    assert "train.lr: 0.003 -> 0.001" in err and f"--resume {base_run}" in err and "another --out" in err


def test_resume_refuses_changes_that_alter_numbers(broken, capsys):
    assert main(["train", "--resume", str(broken), "--set", "train.lr=1"]) == 2
    assert "train.steps" in capsys.readouterr().err


def test_resume_below_the_checkpoint_step_is_refused(broken, capsys):
    assert main(["train", "--resume", str(broken), "--set", "train.steps=5"]) == 2
    err = capsys.readouterr().err
    assert "train.steps=5 is below the step of checkpoint" in err and "train.steps=40 or more" in err


def test_window_runs_log_the_window_normalised_sink(tiny_overrides, tmp_path):
    """A windowed run logs sink_percent_window (alpha over the queries that can see each key) beside the
    plain Sink_k, in every log line and in metrics.json; it can only be >= the plain one."""
    cfg = resolve_config(
        "tiny",
        None,
        [*tiny_overrides, "train.steps=10", "model.attention.mask=window", "model.attention.window=4"],
    )
    train(cfg, tmp_path / "w")
    lines = read_log(tmp_path / "w")
    metrics = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert all(len(x["sink_percent_window"]) == len(x["sink_percent"]) for x in lines)
    assert len(metrics["sink_percent_window"]) == 32
    assert all(w >= p for w, p in zip(metrics["sink_percent_window"], metrics["sink_percent"], strict=True))
    plain = json.loads((tmp_path / "w" / "config.json").read_text())
    assert plain["model"]["attention"]["window"] == 4
