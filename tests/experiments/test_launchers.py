"""`reproduce --launcher slurm` without a cluster: the sbatch script and job records against stand-in Slurm
commands, and whole micro sweeps through submitit's local executor (the same job, requeue and resume)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pickle
import re
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from sinklab.cli import main
from sinklab.experiments import launchers
from sinklab.experiments.launchers import SlurmOptions, parse_slurm_args, parse_time, run_statuses
from sinklab.experiments.suites import SCALES, RunSpec
from sinklab.experiments.sweep import FINISHED, RESUME, logged_step, run_state

pytest.importorskip("submitit")

SLURM = ["--launcher", "slurm", "--suite", "scale-up", "--scale", "micro"]
RESOURCES = [
    *("--partition", "gpu", "--gpus-per-run", "2", "--cpus-per-run", "8", "--mem", "64G"),
    *("--time", "4:00:00", "--slurm-arg", "account=proj", "--slurm-arg", "qos=high", "--max-parallel", "1"),
]

# Stand-ins for Slurm's commands: sbatch keeps each script and answers with ids from 4242 on; sacct prints
# the states the test writes to $FAKE_SLURM/states.
FAKE = {
    "srun": "#!/bin/sh\nexit 0\n",
    "sbatch": (
        '#!/bin/sh\nn=$(ls "$FAKE_SLURM"/scripts | wc -l)\ncp "$1" "$FAKE_SLURM/scripts/$n.sh"\n'
        'echo "Submitted batch job $((4242 + n))"\n'
    ),
    "sacct": "#!/bin/sh\necho 'JobID|State'\ncat \"$FAKE_SLURM/states\" 2>/dev/null\n",
}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SINKLAB_CACHE", str(tmp_path_factory.getbasetemp() / "sinklab-cache"))


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "fake-slurm"
    (root / "bin").mkdir(parents=True)
    (root / "scripts").mkdir()
    for name, text in FAKE.items():
        path = root / "bin" / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(root))
    return root


def _scripts(root: Path) -> list[str]:
    return [p.read_text() for p in sorted((root / "scripts").iterdir(), key=lambda p: int(p.stem))]


def test_sbatch_script_records_and_no_second_submission(tmp_path, fake_slurm, capsys):
    out = tmp_path / "sweep"
    dry = main(["reproduce", *SLURM, *RESOURCES, "--out", str(out), "--dry-run"])
    assert dry == 0 and "#SBATCH --partition=gpu" in capsys.readouterr().out
    assert not _scripts(fake_slurm)

    assert main(["reproduce", *SLURM, *RESOURCES, "--out", str(out)]) == 0
    (script,) = _scripts(fake_slurm)
    for line in (
        "--partition=gpu",
        "--gpus-per-node=2",
        "--cpus-per-task=8",
        "--mem=64G",
        "--time=240",
        "--account=proj",
        "--qos=high",
        "--array=0-1%1",  # both runs, one at a time
        "--requeue",
        "--signal=USR2@120",
        "--ntasks-per-node=1",
    ):
        assert f"#SBATCH {line}\n" in script, line
    records = json.loads((out / "jobs.json").read_text())["runs"]
    assert {n: [r["job_id"] for r in rs] for n, rs in records.items()} == {
        "default": ["4242_0"],
        "sigmoid_nonorm": ["4242_1"],
    }
    # The job runs the local launcher's command, under torchrun for two GPUs, with 8 / 2 threads per worker.
    with open(out / "slurm" / "4242_1" / "4242_1_submitted.pkl", "rb") as f:
        job = pickle.load(f).function
    assert job.command[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    assert job.command[6:8] == ["sinklab.cli", "train"] and "model.attention.kernel=sigmoid" in job.command
    assert job.resume[-2:] == ["--resume", str((out / "runs" / "sigmoid_nonorm").resolve())]
    assert job.env["OMP_NUM_THREADS"] == "4"

    # Queued: a second call submits nothing, and --status shows the jobs.
    (fake_slurm / "states").write_text("4242_[0-1%1]|PENDING\n")
    capsys.readouterr()
    assert main(["reproduce", *SLURM, *RESOURCES, "--out", str(out)]) == 0
    assert len(_scripts(fake_slurm)) == 1
    assert "not submitted (job 4242_0 queued)" in capsys.readouterr().out
    assert main(["reproduce", "--status", "--out", str(out)]) == 0
    status = capsys.readouterr().out
    assert "sigmoid_nonorm           queued " in status and "4242_0 (PENDING)" in status

    # One running, one failed: only the failed run is submitted again (one job, no array).
    (fake_slurm / "states").write_text("4242_0|RUNNING\n4242_1|FAILED\n")
    assert main(["reproduce", "--status", "--out", str(out)]) == 0
    status = capsys.readouterr().out
    assert "sigmoid_nonorm           failed " in status and "job 4242_1 ended FAILED" in status
    assert str(out / "logs" / "sigmoid_nonorm.log") in status
    assert main(["reproduce", *SLURM, *RESOURCES, "--out", str(out)]) == 0
    scripts = _scripts(fake_slurm)
    assert len(scripts) == 2 and "--array" not in scripts[1]
    records = json.loads((out / "jobs.json").read_text())["runs"]
    assert [r["job_id"] for r in records["sigmoid_nonorm"]] == ["4242_1", "4243"]
    assert [r["job_id"] for r in records["default"]] == ["4242_0"]


def test_without_submitit_the_error_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit now raises ImportError
    assert main(["reproduce", *SLURM, "--time", "60", "--out", str(tmp_path)]) == 2
    assert "pip install -e '.[cluster]'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ([], "needs --time"),
        (["--time", "soon"], "--time 'soon'"),
        (["--time", "60", "--mem", "lots"], "--mem 'lots'"),
        (["--time", "60", "--slurm-arg", "partition=x"], "use --partition"),
        (["--time", "60", "--slurm-arg", "array=0-3"], "sets --array itself"),
        (["--time", "60", "--gpus-per-run", "-1"], "--gpus-per-run must be >= 0"),
        (["--time", "60", "--jobs", "2"], "use --max-parallel"),
        (["--time", "60"], "srun"),  # no Slurm on this machine
    ],
)
def test_bad_slurm_options(tmp_path, capsys, extra, words):
    assert main(["reproduce", *SLURM, *extra, "--out", str(tmp_path)]) == 2
    assert words in capsys.readouterr().err


def test_slurm_options_need_the_slurm_launcher(tmp_path, capsys):
    argv = [
        "reproduce",
        "--suite",
        "scale-up",
        "--scale",
        "micro",
        "--partition",
        "gpu",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 2
    assert "--partition: only with --launcher slurm" in capsys.readouterr().err


def test_parse_time_and_slurm_args():
    assert [parse_time(t) for t in ("90", "30:30", "4:00:00", "1-12", "2-00:30", "0-00:01:01")] == [
        90,
        31,
        240,
        2160,
        2910,
        2,
    ]
    assert parse_slurm_args(["account=proj", "--constraint=a100", "exclusive"]) == (
        ("account", "proj"),
        ("constraint", "a100"),
        ("exclusive", True),
    )


# ----------------------------------------------------------------------------------------------------------
# Through submitit's local executor


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _processes_under(folder: Path) -> list[int]:
    """pids of live processes whose command line names `folder` (this test's jobs and trainers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(folder) in cmdline:
                found.append(int(entry.name))
    return found


@pytest.fixture
def local_cluster(tmp_path, monkeypatch):
    """`--launcher slurm` on submitit's local executor; whatever a failing test leaves running is ended."""
    from_args = launchers.options_from_args
    monkeypatch.setattr(
        launchers,
        "options_from_args",
        lambda *a, **k: dataclasses.replace(from_args(*a, **k), cluster="local"),
    )
    monkeypatch.setattr(launchers, "POLL_S", 0.5)
    yield
    for pid in _processes_under(tmp_path.resolve()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(sys.platform != "linux", reason="local jobs are followed through /proc")
def test_micro_sweep_end_to_end_through_submitit(tmp_path, local_cluster, capsys):
    """The issue's acceptance: the optimization suite at micro scale through the slurm code path."""
    out = tmp_path / "sweep"
    suite = ["--launcher", "slurm", "--suite", "optimization", "--scale", "micro"]
    argv = [
        "reproduce",
        *suite,
        "--time",
        "60",
        "--gpus-per-run",
        "0",
        "--max-parallel",
        "2",
        "--out",
        str(out),
    ]
    assert main([*argv, "--wait"]) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    names = ("default", "lr_x2", "lr_x0.25", "batch_x0.5", "batch_x2", "lr_x0.5_steps_x2")
    assert f"submitted {len(names)} job(s)" in printed and "report:" in printed
    assert all(run_state(out / "runs" / n) == FINISHED for n in names)
    assert (out / "report.html").exists()
    log = (out / "logs" / "default.log").read_text()
    assert log.startswith("$ ") and "--out" in log and "finished" in log  # the trainer's own output

    assert main(argv) == 0  # a second call submits nothing
    assert "nothing to submit" in capsys.readouterr().out
    assert sum(len(v) for v in json.loads((out / "jobs.json").read_text())["runs"].values()) == len(names)
    assert main(["reproduce", "--status", "--out", str(out)]) == 0
    assert f"{len(names)} finished" in capsys.readouterr().out


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="local jobs are followed through /proc")
def test_preempted_job_is_requeued_and_a_killed_one_resumes(tmp_path, local_cluster):
    out = (tmp_path / "sweep").resolve()
    scale = dataclasses.replace(
        SCALES["micro"],
        base=(*SCALES["micro"].base, "train.eval_every=5", "train.checkpoint_every=5", "train.steps=100000"),
    )
    specs = [RunSpec("a")]
    options = SlurmOptions(time_min=60, gpus_per_run=0, cluster="local")
    run_dir, log = out / "runs" / "a", out / "logs" / "a.log"
    first = launchers.submit_runs(specs, scale, out, options)
    job_id = int(first.submitted["a"])
    _wait_for(lambda: run_state(run_dir) == RESUME, 120, "a first checkpoint")

    # Preemption: the job's signal makes submitit call TrainJob.checkpoint and requeue the job, which resumes.
    (task,) = [
        p for p in _children(job_id) if b"submitit.core._submit" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    os.kill(task, signal.SIGUSR2)
    _wait_for(lambda: log.read_text().count("$ ") == 2, 90, "the requeued job")
    text = log.read_text()
    assert "# stopped for a requeue" in text
    assert text.rsplit("$ ", 1)[1].split("\n")[0].endswith(f"--resume {run_dir}")
    assert [s.state for s in run_statuses(out, ["a"])] == ["running"]

    # Killed outright (kill -9 of the job) while training: the trainer goes with it, the next call resumes.
    at = logged_step(run_dir)
    _wait_for(lambda: logged_step(run_dir) >= at + 10, 60, "the resumed trainer")
    for pid in [*_children(job_id), job_id]:
        os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: not _processes_under(out), 60, "the job's processes to end")
    assert [s.state for s in run_statuses(out, ["a"])] == ["failed"]
    steps = sorted(int(p.name.split("_")[-1]) for p in (run_dir / "checkpoints").iterdir() if p.is_dir())
    kept = [x for x in (run_dir / "log.jsonl").read_text().splitlines() if json.loads(x)["step"] <= steps[-1]]
    config = json.loads((run_dir / "config.json").read_text())
    config["train"]["steps"] = steps[-1] + 2  # finish soon after the checkpoint (as the sweep now asks)
    (run_dir / "config.json").write_text(json.dumps(config))
    scale = dataclasses.replace(scale, base=(*scale.base, f"train.steps={steps[-1] + 2}"))

    again = launchers.submit_runs(specs, scale, out, options)
    assert list(again.submitted) == ["a"] and again.submitted["a"] != first.submitted["a"]
    launchers.wait_for_runs(out, ["a"], poll_s=0.5, say=lambda _: None)
    assert run_state(run_dir) == FINISHED
    assert log.read_text().count(f"--resume {run_dir}") == 2
    # Resumed from the checkpoint: what was logged up to it is kept as it was, not trained again.
    assert (run_dir / "log.jsonl").read_text().splitlines()[: len(kept)] == kept


@pytest.mark.skipif(sys.platform != "linux", reason="local jobs are followed through /proc")
def test_failed_job_is_reported_with_its_log(tmp_path, local_cluster):
    out = (tmp_path / "sweep").resolve()
    broken = out / "runs" / "broken" / "checkpoints" / "step_0000002"
    broken.mkdir(parents=True)
    (broken / "model.safetensors").write_bytes(b"not a checkpoint")
    options = SlurmOptions(time_min=60, gpus_per_run=0, cluster="local")
    launchers.submit_runs([RunSpec("broken")], SCALES["micro"], out, options)
    (status,) = launchers.wait_for_runs(out, ["broken"], poll_s=0.5, say=lambda _: None)
    log = out / "logs" / "broken.log"
    assert status.state == "failed" and f"see {log}" in status.detail
    assert "--resume" in log.read_text()
    assert (
        "sinklab train exited 2"
        in Path(json.loads((out / "jobs.json").read_text())["runs"]["broken"][0]["job_log"]).read_text()
    )


@pytest.mark.skipif(sys.platform != "linux", reason="a live trainer is found through /proc")
def test_status_of_a_local_sweep(tmp_path, capsys):
    import subprocess

    out = tmp_path / "sweep"
    runs = out / "runs"
    names = ["done", "live", "broken", "half", "todo"]
    (out / "logs").mkdir(parents=True)
    (out / "sweep.json").write_text(json.dumps({"suites": ["x"], "scale": "micro", "runs": names}))
    for name in ("done", "live", "half"):
        (runs / name).mkdir(parents=True)
        (runs / name / "config.json").write_text(json.dumps({"train": {"steps": 40}}))
    (runs / "done" / "metrics.json").write_text("{}")
    (runs / "half" / "checkpoints" / "step_0000010").mkdir(parents=True)
    (runs / "half" / "log.jsonl").write_text(json.dumps({"step": 10}) + "\n")
    (out / "logs" / "broken.log").write_text("$ sinklab train ...\nsinklab train: error: bad checkpoint\n")
    # A trainer of "live" (by its command line) holds the run's lock.
    live = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "sinklab", str((runs / "live").resolve())]
    )
    try:
        (runs / "live" / ".lock").write_text(f"{live.pid}\n")
        cmdline = Path(f"/proc/{live.pid}/cmdline")
        _wait_for(lambda: b"sinklab" in cmdline.read_bytes(), 30, "the stand-in trainer to start")
        assert main(["reproduce", "--status", "--out", str(out)]) == 0
    finally:
        live.kill()
        live.wait()
    printed = capsys.readouterr().out
    for name, state in (
        ("done", "finished"),
        ("live", "running"),
        ("broken", "failed"),
        ("half", "interrupted"),
        ("todo", "not started"),
    ):
        assert re.search(rf"^  {name} +{state}( |$)", printed, flags=re.MULTILINE), name
    assert f"pid {live.pid}" in printed and "10/40" in printed
    assert f"failed broken: bad checkpoint; see {out / 'logs' / 'broken.log'}" in printed


@pytest.mark.dist
@pytest.mark.skipif(sys.platform != "linux", reason="local jobs are followed through /proc")
def test_a_run_with_two_gpus_trains_under_torchrun(tmp_path, local_cluster):
    out = (tmp_path / "sweep").resolve()  # on CPU: two gloo workers stand in for the two GPUs
    options = SlurmOptions(time_min=60, gpus_per_run=2, cpus_per_run=2, cluster="local")
    launchers.submit_runs([RunSpec("ddp")], SCALES["micro"], out, options)
    (status,) = launchers.wait_for_runs(out, ["ddp"], poll_s=0.5, say=lambda _: None)
    assert status.state == FINISHED, status.detail
    assert json.loads((out / "runs" / "ddp" / "config.json").read_text())["world_size"] == 2
    assert "torch.distributed.run --standalone --nproc_per_node=2" in (out / "logs" / "ddp.log").read_text()
