"""The sweep machinery on the micro scale: runs, skip-finished, resume, report, and the CLI."""

import json
import os
import subprocess
import sys

import pytest

from sinklab.experiments.suites import SCALES, RunSpec, runs_for, with_seeds
from sinklab.experiments.sweep import FINISHED, FRESH, RESUME, run_state, run_sweep, stale_runs


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SINKLAB_CACHE", str(tmp_path_factory.getbasetemp() / "sinklab-cache"))


def test_runs_then_skips_finished_and_resumes_interrupted(tmp_path):
    scale = SCALES["micro"]
    specs = [RunSpec("default"), RunSpec("lr_x2", ("train.lr=0.002",))]
    first = run_sweep(specs, scale, tmp_path, jobs=2, progress=False)
    assert sorted(first.finished) == ["default", "lr_x2"] and not first.failed
    for name in ("default", "lr_x2"):
        assert run_state(tmp_path / "runs" / name) == FINISHED
        config = json.loads((tmp_path / "runs" / name / "config.json").read_text())
        assert config["model"]["d_model"] == 32
    assert json.loads((tmp_path / "runs" / "lr_x2" / "config.json").read_text())["train"]["lr"] == 0.002

    again = run_sweep(specs, scale, tmp_path, jobs=2, progress=False)
    assert again.skipped == ["default", "lr_x2"] and not again.finished
    # (model.vocab_size and context, filled in from the data at training, do not make a run stale.)
    assert stale_runs(specs, scale, tmp_path) == {}
    # Nor do settings that change how a run was logged or carried out, never its numbers.
    logged = [RunSpec("default", ("train.tensorboard=true", "train.checkpoint_every=3")), specs[1]]
    assert stale_runs(logged, scale, tmp_path) == {}

    # A finished run of the same name but other settings is not taken as this one.
    changed = [RunSpec("default"), RunSpec("lr_x2", ("train.lr=0.004",))]
    assert stale_runs(changed, scale, tmp_path) == {"lr_x2": ["train.lr = 0.002 there, 0.004 here"]}
    with pytest.raises(ValueError, match=r"lr_x2: train\.lr = 0\.002 there, 0\.004 here"):
        run_sweep(changed, scale, tmp_path, jobs=1, progress=False)

    # An interrupted run: a checkpoint but no final metrics -> the next sweep resumes it.
    (tmp_path / "runs" / "lr_x2" / "metrics.json").unlink()
    assert run_state(tmp_path / "runs" / "lr_x2") == RESUME
    resumed = run_sweep(specs, scale, tmp_path, jobs=1, progress=False)
    assert resumed.finished == ["lr_x2"]
    log = (tmp_path / "logs" / "lr_x2.log").read_text()
    assert "--resume" in log
    assert run_state(tmp_path / "nothing") == FRESH


def test_bad_override_is_an_error_before_anything_starts(tmp_path):
    with pytest.raises(ValueError, match="window"):
        run_sweep([RunSpec("bad", ("model.attention.window=3",))], SCALES["micro"], tmp_path, progress=False)
    assert not (tmp_path / "runs" / "bad").exists()


def test_failed_run_is_reported_not_fatal(tmp_path):
    broken = tmp_path / "runs" / "broken" / "checkpoints" / "step_0000002"
    broken.mkdir(parents=True)
    (broken / "model.safetensors").write_bytes(b"not a checkpoint")
    outcome = run_sweep([RunSpec("broken")], SCALES["micro"], tmp_path, progress=False)
    assert list(outcome.failed) == ["broken"]
    assert "--resume" in (tmp_path / "logs" / "broken.log").read_text()


def test_reproduce_cli_writes_a_report(tmp_path):
    out = tmp_path / "sweep"
    env = dict(os.environ, SINKLAB_CACHE=os.environ["SINKLAB_CACHE"])
    cmd = [
        sys.executable,
        "-m",
        "sinklab.cli",
        "reproduce",
        "--suite",
        "scale-up",
        "--scale",
        "micro",
        "--out",
        str(out),
        "--jobs",
        "2",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| Sigmoid without normalisation has no sink at 1B either |" in proc.stdout
    assert (out / "report.html").exists() and (out / "claims.json").exists()
    claims = json.loads((out / "claims.json").read_text())["claims"]
    assert claims[0]["verdict"] == "not at this scale"  # micro is not 1B
    # The micro default grows no sink, so the run that only a default-sink claim reads was not trained.
    assert "the default grew no sink at scale micro: skipping 1 run(s)" in proc.stdout
    assert (out / "runs" / "default").is_dir() and not (out / "runs" / "sigmoid_nonorm").exists()
    dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, env=env, timeout=300)
    assert "already finished" in dry.stdout and "estimated time" in dry.stdout
    assert "the default trains first; the other 1 run(s)" in dry.stdout
    every = subprocess.run([*cmd, "--train-all"], capture_output=True, text=True, env=env, timeout=600)
    assert every.returncode == 0, every.stdout + every.stderr
    assert (out / "runs" / "sigmoid_nonorm" / "metrics.json").exists()
    assert json.loads((out / "claims.json").read_text())["claims"][0]["verdict"] == "not at this scale"


def test_the_default_gates_the_other_runs_only_at_cpu_scales():
    from sinklab.experiments.command import gated_runs

    specs = with_seeds(runs_for("scale-up", SCALES["micro"]), 2)
    assert gated_runs(specs, SCALES["micro"], ["scale-up"]) == {"sigmoid_nonorm"}
    assert gated_runs(runs_for("scale-up", SCALES["60m"]), SCALES["60m"], ["scale-up"]) == set()
    natural = gated_runs(runs_for("natural", SCALES["nobos"]), SCALES["nobos"], ["natural"])
    assert "default" not in natural and {"random_x1", "pos_nope", "sigmoid_nonorm"} <= natural


def test_sweep_json_keeps_earlier_suites_of_the_same_scale(tmp_path):
    from sinklab.experiments.command import merged_sweep

    first = merged_sweep(tmp_path, ["loss"], "tiny", "note", ["default", "wd_0"])
    (tmp_path / "sweep.json").write_text(json.dumps(first))
    second = merged_sweep(tmp_path, ["data"], "tiny", "note", ["default", "no_bos"])
    assert second["suites"] == ["loss", "data"] and second["runs"] == ["default", "wd_0", "no_bos"]
    other_scale = merged_sweep(tmp_path, ["data"], "micro", "note", ["default"])
    assert other_scale["suites"] == ["data"] and other_scale["runs"] == ["default"]


def test_runs_only_natural_claims_read_are_skipped_where_a_bos_starts_every_sequence():
    from sinklab.experiments.command import untestable_runs

    tiny = with_seeds(runs_for("all", SCALES["tiny"]), 3)
    skipped = untestable_runs(tiny, SCALES["tiny"], ["data", "loss", "architecture"])
    assert {"random_x1", "random_x2-seed2", "data_1pct-seed1", "prefix_5", "window_8"} <= skipped
    # architecture claims are judged at a BOS scale (one criterion), and other claims read these
    assert not {"default", "pos_nope", "post_ln-seed1", "sink_token", "kv_bias_k-seed1", "wd_0"} & skipped
    nobos = runs_for("natural", SCALES["nobos"])
    assert untestable_runs(nobos, SCALES["nobos"], ["natural"]) == set()  # no BOS: testable
    assert untestable_runs(runs_for("architecture", SCALES["60m"]), SCALES["60m"], ["architecture"]) == set()


def test_the_dry_run_estimates_from_the_scales_measured_speed(tmp_path) -> None:
    from sinklab.experiments.suites import SCALES, optimization
    from sinklab.experiments.sweep import estimate_seconds, scale_estimate_seconds, step_equivalents

    scale = SCALES["tiny"]
    specs = optimization(scale)
    assert estimate_seconds(specs, scale, tmp_path, 2) is None  # nothing has run under tmp_path
    steps = sum(step_equivalents(s, scale) for s in specs)
    assert scale_estimate_seconds(specs, scale, 2) == pytest.approx(scale.seconds_per_step * steps / 2)
    assert scale_estimate_seconds(specs, SCALES["60m"], 1) is None  # not measured: the dry run says so


def test_runs_no_claim_reads_are_skipped_at_cpu_scales_only():
    from sinklab.experiments.command import unread_runs

    suites = ["optimization", "data", "loss", "architecture", "scale-up"]
    ref = with_seeds(runs_for("all", SCALES["ref"]), 2)
    skipped = unread_runs(ref, SCALES["ref"], suites)
    assert {"softpick", "softpick-seed1", "gated", "wd_0.1"} <= skipped
    assert not {"default", "default-seed1", "lr_x0.25", "wd_0", "wd_5", "sigmoid_nonorm", "post_ln"} & skipped
    assert unread_runs(runs_for("architecture", SCALES["60m"]), SCALES["60m"], ["architecture"]) == set()


def test_the_estimate_counts_a_token_matched_batch_run_by_its_tokens():
    from sinklab.experiments.suites import optimization
    from sinklab.experiments.sweep import run_steps, step_equivalents

    scale = SCALES["ref"]
    runs = {s.name: s for s in optimization(scale)}
    assert run_steps(runs["batch_x0.5"], scale) == 2 * run_steps(runs["default"], scale)
    # twice the steps at half the batch: the default's cost, not twice it
    assert step_equivalents(runs["batch_x0.5"], scale) == step_equivalents(runs["default"], scale)
    assert step_equivalents(runs["batch_x2"], scale) == step_equivalents(runs["default"], scale)
    assert step_equivalents(runs["lr_x0.5_steps_x2"], scale) == 2 * step_equivalents(runs["default"], scale)
