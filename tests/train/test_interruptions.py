"""Interrupted runs end as uninterrupted ones: kill -9 and SIGTERM at any point, the same command again,
one trainer per run directory, a diverging loss, a full disk, and checkpoints from other runs."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from sinklab.cli import main
from sinklab.train import checkpoint as ckpt_io
from sinklab.train import loop
from sinklab.train.checkpoint import list_checkpoints
from sinklab.train.loop import read_log
from tests.train.conftest import STEPS, assert_same_run, comparable, copy_run, train_process, wait_for


def _tb_steps(run) -> list[int]:
    """The steps of the val_loss scalars in a run's TensorBoard events (all files together)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps = []
    for events in sorted((run / "tb").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        steps += [e.step for e in acc.Scalars("val_loss")]
    return steps


def _no_leftovers(run) -> None:
    hidden = [p.name for p in (run / "checkpoints").glob(".*")] if (run / "checkpoints").exists() else []
    assert hidden == [], hidden


def test_kill_9_before_the_first_checkpoint_then_resume_restarts(base_run, tiny_overrides, tmp_path, capsys):
    out = tmp_path / "killed"
    # No checkpoint until the (far) end: the kill always lands before the first one.
    proc = train_process(out, [*tiny_overrides, "train.steps=100000", "train.checkpoint_every=0"])
    wait_for(proc, lambda: (out / "log.jsonl").exists() and (out / "log.jsonl").read_text().strip() != "")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list_checkpoints(out)
    assert main(["train", "--resume", str(out), "--set", f"train.steps={STEPS}"]) == 0
    assert "no checkpoint yet: training it from step 0" in capsys.readouterr().err
    assert_same_run(base_run, out)
    assert _tb_steps(out) == [0, 10, 20, 30, 40]  # the killed attempt's events are gone


def test_sigterm_stops_cleanly_and_resume_continues(base_run, tiny_overrides, tmp_path, capsys):
    out = tmp_path / "terminated"
    proc = train_process(out, [*tiny_overrides, "train.steps=100000"])
    wait_for(proc, lambda: bool(list_checkpoints(out)))
    # while it trains, a second trainer on the same directory is refused, naming the holder
    assert main(["train", "--resume", str(out)]) == 2
    assert f"locked by pid {proc.pid}" in capsys.readouterr().err
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    _no_leftovers(out)
    latest = int(list_checkpoints(out)[-1].name.split("_")[1])
    target = max(STEPS, latest + 10)
    assert main(["train", "--resume", str(out), "--set", f"train.steps={target}"]) == 0
    resumed = comparable(read_log(out))
    assert [line["step"] for line in resumed] == list(range(0, target + 1, 10))
    assert resumed[: STEPS // 10 + 1] == comparable(read_log(base_run))


@pytest.mark.parametrize("kept", [0, 2], ids=["no-checkpoint", "half"])
def test_the_same_out_command_continues_an_interrupted_run(kept, base_run, tiny_overrides, tmp_path, capsys):
    run = copy_run(base_run, tmp_path / "run")
    for ckpt in list_checkpoints(run)[kept:]:
        shutil.rmtree(ckpt)
    shutil.rmtree(run / "model")
    (run / "metrics.json").unlink()
    (run / "checkpoints" / ".tmp_step_0000030").mkdir()  # a checkpoint write that was killed
    assert main(["train", "--out", str(run), "--set", *tiny_overrides]) == 0
    captured = capsys.readouterr()
    start = "continuing it from step_0000020" if kept else "no checkpoint yet: training it from step 0"
    assert "already holds this run (same settings)" in captured.err and start in captured.err
    assert f"finished {run} at step {STEPS}" in captured.out and "Sink_1" in captured.out
    assert_same_run(base_run, run)
    _no_leftovers(run)


def test_the_lock_refuses_a_second_process_and_dies_with_its_holder(tiny_overrides, tmp_path, capsys):
    run = tmp_path / "locked"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from sinklab.train.rundir import run_lock\n"
            "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(120)",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert (run / ".lock").read_text().strip() == str(holder.pid)
        assert main(["train", "--out", str(run), "--set", *tiny_overrides]) == 2
        err = capsys.readouterr().err
        assert f"{run} is locked by pid {holder.pid}" in err and "Traceback" not in err
    finally:
        holder.kill()  # kill -9: the kernel releases the lock with the process
        holder.wait()
    from sinklab.train.rundir import run_lock

    with run_lock(run):
        assert (run / ".lock").read_text().strip() == str(os.getpid())


def test_a_diverging_loss_stops_the_run_keeping_the_last_checkpoint(
    tiny_overrides, tmp_path, capsys, monkeypatch
):
    real = loop.training_loss
    calls = []

    def diverging(forward, batch, mask):
        calls.append(1)
        loss = real(forward, batch, mask)
        return loss * math.nan if len(calls) > 15 else loss  # step 16 (one call per step) diverges

    monkeypatch.setattr(loop, "training_loss", diverging)
    out = tmp_path / "nan"
    assert main(["train", "--out", str(out), "--set", *tiny_overrides]) == 2
    err = capsys.readouterr().err
    assert "training loss became nan at step 16" in err and "lower the learning rate" in err
    assert "train.lr=0.003" in err and "step_0000010" in err and "Traceback" not in err
    assert [p.name for p in list_checkpoints(out)] == ["step_0000010"]
    text = (out / "log.jsonl").read_text()
    assert "NaN" not in text and [json.loads(line)["step"] for line in text.splitlines()] == [0, 10]


def test_the_log_never_holds_nan(tmp_path):
    from sinklab.train.logging import RunLogger

    logger = RunLogger(tmp_path, enabled=True, tensorboard=False, progress=False, total_tokens=1)
    logger.log({"step": 0, "val_loss": math.inf, "sink_percent": [math.nan, 1.0], "train_loss": None})
    line = (tmp_path / "log.jsonl").read_text()
    assert json.loads(line) == {"step": 0, "val_loss": None, "sink_percent": [None, 1.0], "train_loss": None}


@pytest.mark.parametrize(
    ("failure", "code", "message"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), 2, "no space left on the device"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
    ids=["disk-full", "interrupt"],
)
def test_a_failed_checkpoint_write_leaves_no_temporary(
    failure, code, message, tiny_overrides, tmp_path, capsys, monkeypatch
):
    real = torch.save

    def failing_save(obj, path, *args, **kwargs):
        if "step_0000020" in str(path):  # the second checkpoint fails half-way (its weights are written)
            raise failure
        return real(obj, path, *args, **kwargs)

    monkeypatch.setattr(ckpt_io.torch, "save", failing_save)
    out = tmp_path / "full"
    assert main(["train", "--out", str(out), "--set", *tiny_overrides]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_0000010"]  # no .tmp_step_0000020


def test_a_checkpoint_from_another_run_is_refused(base_run, tmp_path, capsys):
    # Run B: the same model and data as the base run but another lr and seed, holding A's checkpoint.
    other = copy_run(base_run, tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    config["train"]["lr"], config["train"]["seed"] = 1e-3, 7
    (other / "config.json").write_text(json.dumps(config))
    assert main(["train", "--resume", str(other)]) == 2
    err = capsys.readouterr().err
    assert "written by a run with other settings" in err
    assert "train.lr: 0.003 -> 0.001" in err and "train.seed: 0 -> 7" in err


def test_checkpoints_with_the_older_digest_still_resume(base_run, tmp_path):
    """Checkpoints written before the digest covered the whole run (model + data only) resume as before."""
    from sinklab.train.rundir import run_config_of

    run = copy_run(base_run, tmp_path / "legacy")
    for ckpt in list_checkpoints(run)[2:]:
        shutil.rmtree(ckpt)
    shutil.rmtree(run / "model")
    (run / "metrics.json").unlink()
    state_path = list_checkpoints(run)[-1] / "state.json"
    state = json.loads(state_path.read_text())
    del state["settings"]
    state["config_digest"] = ckpt_io.legacy_digest(run_config_of(run))
    state_path.write_text(json.dumps(state))
    assert main(["train", "--resume", str(run)]) == 0
    assert_same_run(base_run, run)


def _split_to_separate_projections(ckpt) -> None:
    """Rewrite a checkpoint as sinklab wrote it before q/k/v and gate/up were fused: separate matrices in
    model.safetensors and separate AdamW moments in optimizer.pt."""
    from safetensors.torch import load_file, save_file

    from sinklab.model.io import load_config

    cfg = load_config(ckpt)
    hd, kv = cfg.head_dim, cfg.kv_heads
    sizes = {
        "self_attn.qkv_proj.weight": (cfg.n_head * hd, kv * hd, kv * hd),
        "mlp.gate_up_proj.weight": (cfg.ffn_dim, cfg.ffn_dim),
    }
    parts = {
        "self_attn.qkv_proj.weight": [
            "self_attn.q_proj.weight",
            "self_attn.k_proj.weight",
            "self_attn.v_proj.weight",
        ],
        "mlp.gate_up_proj.weight": ["mlp.gate_proj.weight", "mlp.up_proj.weight"],
    }

    def split(name: str, value, pick):
        for fused, names in parts.items():
            if name.endswith(fused):
                prefix = name[: -len(fused)]
                return {prefix + n: pick(value, i, sizes[fused]) for i, n in enumerate(names)}
        return {name: value}

    tensor = lambda t, i, s: t.split(s)[i].clone()  # noqa: E731
    moments = lambda d, i, s: {k: (v.split(s)[i].clone() if v.dim() else v) for k, v in d.items()}  # noqa: E731
    weights = load_file(str(ckpt / "model.safetensors"))
    old = {k2: v2 for k, v in weights.items() for k2, v2 in split(k, v, tensor).items()}
    save_file(old, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    optim = torch.load(ckpt / "optimizer.pt", weights_only=True)
    optim["state"] = {k2: v2 for k, v in optim["state"].items() for k2, v2 in split(k, v, moments).items()}
    for group in optim["param_groups"]:
        group["params"] = [k2 for k in group["params"] for k2 in split(k, None, lambda *_: None)]
    torch.save(optim, ckpt / "optimizer.pt")
    assert any(k.endswith("q_proj.weight") for k in old) and any(k.endswith("up_proj.weight") for k in old)


def test_checkpoints_with_separate_projections_still_resume(base_run, tmp_path):
    """A checkpoint written before q/k/v and gate/up were fused (separate matrices and AdamW moments) is
    converted on load and continues the run exactly."""
    run = copy_run(base_run, tmp_path / "separate")
    for ckpt in list_checkpoints(run)[2:]:
        shutil.rmtree(ckpt)
    shutil.rmtree(run / "model")
    (run / "metrics.json").unlink()
    _split_to_separate_projections(list_checkpoints(run)[-1])
    assert main(["train", "--resume", str(run)]) == 0
    assert_same_run(base_run, run)


def test_the_same_command_on_a_finished_run_does_nothing(base_run, tiny_overrides, tmp_path, capsys):
    run = copy_run(base_run, tmp_path / "done")
    before = (run / "metrics.json").stat().st_mtime_ns
    assert main(["train", "--out", str(run), "--set", *tiny_overrides]) == 0
    captured = capsys.readouterr()
    assert "already finished (step 40); nothing to do" in captured.err
    assert f"val loss {read_log(base_run)[-1]['val_loss']:.4f}" in captured.out
    assert (run / "metrics.json").stat().st_mtime_ns == before
