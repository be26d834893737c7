"""`sinklab reproduce --launcher slurm`: every unfinished run of a sweep as one submitit job (together, one
Slurm job array), requeued from its last checkpoint when preempted or at its time limit; and
`reproduce --status` for both launchers.

A job runs the same `sinklab train` command line as the local launcher (under torchrun when it has several
GPUs) and appends the trainer's output to the same OUT/logs/NAME.log. Submitted job ids go to OUT/jobs.json;
a run with a queued or running job is not submitted again, and the run directory's lock guards the rest.
submitit is an optional extra (`pip install -e '.[cluster]'`), imported only when it is used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sinklab.errors import SinklabError
from sinklab.experiments.suites import RunSpec, Scale
from sinklab.experiments.sweep import (
    FINISHED,
    RESUME,
    die_with_parent,
    logged_step,
    run_state,
    run_steps,
    stop_children,
    train_command,
)
from sinklab.io import atomic_write_json

JOBS_FILE = "jobs.json"
JOBS_FORMAT = "sinklab-jobs"
STOP_GRACE_S = 60.0  # a trainer told to stop (requeue) gets this long to exit before SIGKILL
SIGNAL_DELAY_S = 120  # Slurm's warning before the time limit: the stop above, then `scontrol requeue`
TERM_WAIT_S = 300.0  # after a SIGTERM from Slurm, how long a job waits for the requeue signal or SIGKILL
ACCOUNTING_LAG_S = 600.0  # a job that sacct does not know yet counts as queued for this long
POLL_S = 60.0  # --wait: seconds between two looks at the jobs

# Run states shown by --status (FINISHED, "finished", comes from the sweep module).
RUNNING, QUEUED, FAILED, INTERRUPTED, NOT_STARTED, UNKNOWN = (
    "running",
    "queued",
    "failed",
    "interrupted",
    "not started",
    "unknown",
)
ACTIVE = (RUNNING, QUEUED, UNKNOWN)  # a run in one of these is never submitted again

# Slurm job states (sacct's State column, first word) that mean the job is still coming or going.
SLURM_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SUSPENDED"}
SLURM_QUEUED |= {"CONFIGURING", "RESIZING"}
SLURM_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "STOPPED"}

_CLUSTER_EXTRA = "pip install -e '.[cluster]' (from a checkout) or pip install 'sinklab[cluster]'"


def require_submitit() -> Any:
    """The submitit module, or an error that names the extra to install."""
    try:
        import submitit
    except ImportError:
        raise SinklabError(f"--launcher slurm needs submitit, an optional extra: {_CLUSTER_EXTRA}") from None
    return submitit


# ----------------------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class SlurmOptions:
    """What each run's job asks Slurm for (every run of a sweep asks for the same)."""

    time_min: int  # the job's time limit; a run that needs longer is requeued from its checkpoint
    partition: str | None = None
    gpus_per_run: int = 1  # more than 1: torchrun, one worker per GPU (train.distributed: ddp or fsdp)
    cpus_per_run: int | None = None
    mem: str | None = None  # as sbatch --mem takes it: 64G, 500M
    max_parallel: int | None = None  # array tasks running at once
    max_timeouts: int = 20  # requeues at the time limit before a job gives up (preemptions do not count)
    extra: tuple[tuple[str, str | bool], ...] = ()  # --slurm-arg KEY=VALUE, passed through to sbatch
    cluster: str = "slurm"  # "local": submitit's local executor runs the same jobs here (tests)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Slurm (--launcher slurm; needs the 'cluster' extra)")
    group.add_argument("--partition", help="Slurm partition of every job")
    group.add_argument(
        "--gpus-per-run", type=int, default=None, help="GPUs per run (default 1; >1 trains under torchrun)"
    )
    group.add_argument("--cpus-per-run", type=int, help="CPU cores per run (sbatch --cpus-per-task)")
    group.add_argument("--mem", help="memory per run, as sbatch --mem takes it (64G, 500M)")
    group.add_argument(
        "--time",
        help="time limit of one job: minutes, or [D-]HH:MM[:SS]; a run that needs longer is requeued from "
        "its last checkpoint (required with --launcher slurm)",
    )
    group.add_argument(
        "--slurm-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, e.g. account=proj, qos=high, constraint=a100 (repeatable; KEY alone "
        "for a flag)",
    )
    group.add_argument("--max-parallel", type=int, help="runs (array tasks) at once (default: all)")
    group.add_argument(
        "--max-timeouts", type=int, default=None, help="requeues at the time limit per job (default 20)"
    )
    group.add_argument(
        "--wait",
        action="store_true",
        help="wait for the jobs, then write the report as the local launcher does",
    )


_SLURM_FLAGS = ("partition", "gpus_per_run", "cpus_per_run", "mem", "time", "max_parallel", "max_timeouts")


def check_local_arguments(args: argparse.Namespace) -> None:
    """Slurm options given to the local launcher are a mistake, not something to ignore."""
    given = [f"--{k.replace('_', '-')}" for k in _SLURM_FLAGS if getattr(args, k, None) is not None]
    given += ["--slurm-arg"] * bool(getattr(args, "slurm_arg", None))
    given += ["--wait"] * bool(getattr(args, "wait", False))
    if given:
        raise SinklabError(f"{', '.join(given)}: only with --launcher slurm")


def options_from_args(args: argparse.Namespace) -> SlurmOptions:
    require_submitit()  # before anything is written
    if args.time is None:
        raise SinklabError(
            "--launcher slurm needs --time, the time limit of one job (minutes or [D-]HH:MM[:SS], e.g. "
            "--time 24:00:00); a run that needs longer is requeued from its last checkpoint"
        )
    for flag, value, least in (
        ("--gpus-per-run", args.gpus_per_run, 0),
        ("--cpus-per-run", args.cpus_per_run, 1),
        ("--max-parallel", args.max_parallel, 1),
        ("--max-timeouts", args.max_timeouts, 0),
    ):
        if value is not None and value < least:
            raise SinklabError(f"{flag} must be >= {least}, got {value}")
    return SlurmOptions(
        time_min=parse_time(args.time),
        partition=args.partition,
        gpus_per_run=1 if args.gpus_per_run is None else args.gpus_per_run,
        cpus_per_run=args.cpus_per_run,
        mem=parse_mem(args.mem) if args.mem is not None else None,
        max_parallel=args.max_parallel,
        max_timeouts=20 if args.max_timeouts is None else args.max_timeouts,
        extra=parse_slurm_args(args.slurm_arg),
    )


def parse_time(text: str) -> int:
    """Minutes in a Slurm time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (seconds round up)."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", text.strip())
    if match is None:
        raise SinklabError(f"--time {text!r}: expected minutes or [D-]HH:MM[:SS] (90, 4:00:00, 2-00:00:00)")
    days = int(match.group(1) or 0)
    parts = [int(p) for p in match.group(2).split(":")]
    if days:  # after a day count the first field is hours
        hours, minutes, seconds = (*parts, 0, 0)[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:  # Slurm reads MM or MM:SS
        hours, minutes, seconds = 0, parts[0], parts[1] if len(parts) == 2 else 0
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total < 60:
        raise SinklabError(f"--time {text!r}: a job needs at least a minute")
    return -(-total // 60)


def parse_mem(text: str) -> str:
    if re.fullmatch(r"\d+[KMGT]?", text.strip(), flags=re.IGNORECASE) is None:
        raise SinklabError(f"--mem {text!r}: expected a size as sbatch --mem takes it (64G, 500M, 1T)")
    return text.strip().upper()


# sbatch options that sinklab sets itself, and those with a flag of their own.
_RESERVED = {"output", "error", "array", "signal", "open_mode", "nodes", "ntasks_per_node", "requeue"}
_OWN_FLAG = {
    "partition": "--partition",
    "gpus_per_node": "--gpus-per-run",
    "cpus_per_task": "--cpus-per-run",
    "mem": "--mem",
    "time": "--time",
    "job_name": "(the sweep's name)",
}


def parse_slurm_args(items: list[str]) -> tuple[tuple[str, str | bool], ...]:
    parsed: list[tuple[str, str | bool]] = []
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not key or (eq and not value):
            raise SinklabError(f"--slurm-arg {item!r}: expected KEY=VALUE (account=proj) or KEY for a flag")
        if key in _OWN_FLAG:
            raise SinklabError(f"--slurm-arg {item!r}: use {_OWN_FLAG[key]} instead")
        if key in _RESERVED:
            raise SinklabError(f"--slurm-arg {item!r}: sinklab sets --{key.replace('_', '-')} itself")
        parsed.append((key, value if eq else True))
    return tuple(parsed)


# ----------------------------------------------------------------------------------------------------------
# The job


def job_command(spec: RunSpec, scale: Scale, run_dir: Path, state: str, gpus: int) -> list[str]:
    """The local launcher's `sinklab train` command; with several GPUs, the same under torchrun."""
    cmd = train_command(spec, scale, run_dir, state)
    if gpus <= 1:
        return cmd
    python, rest = cmd[0], cmd[1:]  # rest: -m sinklab.cli train ...
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}", *rest]


def _preempt_signal() -> signal.Signals:
    """The signal submitit checkpoints on (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), signal.SIGUSR2)


class TrainJob:
    """One run as a submitit job (submitit's Checkpointable pattern, without importing submitit here).

    `__call__` runs the trainer and waits; Slurm's warning signal before the time limit (or at a preemption)
    makes submitit call `checkpoint`, which stops the trainer (it keeps its checkpoints) and returns the
    resume command as the job's requeued submission. A requeued job whose run has finished does nothing.
    """

    def __init__(
        self, name: str, out: Path, command: list[str], resume: list[str], env: dict[str, str]
    ) -> None:
        self.name = name
        self.out = str(Path(out).resolve())
        self.command = list(command)
        self.resume = list(resume)
        self.env = dict(env)
        self._proc: subprocess.Popen | None = None
        self._terminated = False

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / "runs" / self.name

    @property
    def log(self) -> Path:
        return Path(self.out) / "logs" / f"{self.name}.log"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_proc": None, "_terminated": False}  # a process does not travel

    def __call__(self) -> str:
        if run_state(self.run_dir) == FINISHED:
            return FINISHED
        self._note_sigterm()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        usr_sig = _preempt_signal()
        with self.log.open("a") as log:
            log.write(f"$ {shlex.join(self.command)}\n")
            log.flush()
            self._proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, **self.env),
                cwd=self.out,
                preexec_fn=lambda: _job_child(usr_sig),
            )
        try:
            # Poll rather than wait(): submitit's signal handler calls checkpoint(), which waits on the
            # same process, and Popen.wait() would hold the lock that second wait needs.
            while self._proc.poll() is None:
                time.sleep(1.0)
        finally:
            stop_children([self._proc], grace=STOP_GRACE_S)  # leaving by an exception (the requeue)
        code = self._proc.returncode
        if code == 0 and run_state(self.run_dir) == FINISHED:
            return FINISHED
        if self._terminated:
            # Slurm is stopping this job (its SIGTERM reached the trainer too): preempted, and then the
            # requeue signal comes, or cancelled, and then SIGKILL comes. Ending now would read as a failure.
            time.sleep(TERM_WAIT_S)
        raise RuntimeError(
            f"run {self.name}: sinklab train exited {code}{last_error(self.log)}; see {self.log}"
        )

    def checkpoint(self) -> Any:
        """Called by submitit before it requeues the job: stop the trainer; the requeued job resumes."""
        from submitit.helpers import DelayedSubmission

        if self._proc is not None:
            stop_children([self._proc], grace=STOP_GRACE_S)
        with contextlib.suppress(OSError), self.log.open("a") as log:
            log.write(
                "# stopped for a requeue (preempted or at the time limit); it resumes from its checkpoint\n"
            )
        resumable = (self.run_dir / "config.json").is_file()  # else the trainer never started: start again
        command = self.resume if resumable else self.command
        return DelayedSubmission(TrainJob(self.name, Path(self.out), command, self.resume, self.env))

    def _note_sigterm(self) -> None:
        """Remember a SIGTERM, then let submitit's own handler (which logs and ignores it) see it too."""
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):  # not under submitit: SIGTERM keeps its usual effect
            return

        def note(signum: int, frame: Any) -> None:
            self._terminated = True
            previous(signum, frame)

        with contextlib.suppress(ValueError):  # not the main thread: leave the signals alone
            signal.signal(signal.SIGTERM, note)


def _job_child(usr_sig: signal.Signals) -> None:
    """In the trainer, before exec: what the local launcher sets up, and the checkpoint signal ignored.

    Slurm sends that signal to every process of the job; the job process answers it by stopping the trainer
    cleanly, which the signal's default action (termination) would not do."""
    die_with_parent()
    signal.signal(usr_sig, signal.SIG_IGN)


def last_error(log_path: Path) -> str:
    """The trainer's own error line (`sinklab train: error: ...`) in the log's last attempt, if any."""
    if not log_path.is_file():
        return ""
    lines = log_path.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("$ ")]
    errors = [x for x in lines[starts[-1] if starts else 0 :] if "error:" in x]
    return f": {errors[-1].split('error:', 1)[1].strip()}" if errors else ""


# ----------------------------------------------------------------------------------------------------------
# Submission


def make_executor(out: Path, options: SlurmOptions) -> Any:
    """A submitit executor (options.cluster: slurm, or local) writing its files to OUT/slurm/JOB_ID/."""
    submitit = require_submitit()
    folder = Path(out).resolve() / "slurm" / "%j"
    if options.cluster == "local":
        executor = submitit.LocalExecutor(folder=folder, max_num_timeout=options.max_timeouts)
        executor.update_parameters(
            timeout_min=options.time_min, gpus_per_node=options.gpus_per_run, signal_delay_s=SIGNAL_DELAY_S
        )
        return executor
    if options.cluster != "slurm":
        raise ValueError(f"unknown cluster {options.cluster!r}; accepted: slurm, local")
    try:
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=options.max_timeouts)
    except RuntimeError as err:  # no srun on PATH
        raise SinklabError(
            f"--launcher slurm: {err} Run `sinklab reproduce` on a machine that submits to the cluster (a "
            "login node), or use --launcher local"
        ) from None
    valid = executor._valid_parameters()
    params: dict[str, Any] = {
        "job_name": f"sinklab-{Path(out).resolve().name}",
        "time": options.time_min,
        "nodes": 1,
        "ntasks_per_node": 1,  # one task; torchrun starts the workers for several GPUs
        "signal_delay_s": SIGNAL_DELAY_S,
        "additional_parameters": {"requeue": True},  # `scontrol requeue` needs a requeueable job
    }
    optional = {
        "partition": options.partition,
        "gpus_per_node": options.gpus_per_run or None,
        "cpus_per_task": options.cpus_per_run,
        "mem": options.mem,
        "array_parallelism": options.max_parallel,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    for key, value in options.extra:
        if key in valid:
            params[key] = value
        else:  # any other sbatch option, written as given
            params["additional_parameters"][key.replace("_", "-")] = value
    try:
        executor.update_parameters(**params)
    except ValueError as err:
        raise SinklabError(f"--slurm-arg: {err}") from None
    return executor


def submission_script(executor: Any, runs: int) -> str:
    """The sbatch script submitit writes for `runs` runs (one job, or an array of them)."""
    if runs > 1:
        executor.parameters["map_count"] = runs  # what submitit sets for an array
    try:
        return executor._make_submission_file_text(executor._submitit_command_str, "dry-run")
    finally:
        executor.parameters.pop("map_count", None)


def _job_env(options: SlurmOptions) -> dict[str, str]:
    # PYTHONSAFEPATH: a `sinklab/` folder in the working directory must not shadow the installed package.
    env = {"PYTHONSAFEPATH": "1"}
    if options.cpus_per_run:  # one torch thread pool per GPU worker, within the job's cores
        threads = str(max(1, options.cpus_per_run // max(1, options.gpus_per_run)))
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    return env


@dataclass
class Submission:
    submitted: dict[str, str]  # run -> job id
    skipped: dict[str, str]  # run -> why (finished, or its queued/running job)
    script: Path | None  # the sbatch script of the submission (Slurm only)


def submit_runs(
    specs: list[RunSpec],
    scale: Scale,
    out: Path,
    options: SlurmOptions,
) -> Submission:
    """Submit every run that is neither finished nor queued or running as a job; record the job ids."""
    from sinklab.experiments.sweep import check_not_stale

    out = Path(out)
    check_not_stale(specs, scale, out)
    skipped = {s.name: FINISHED for s in specs if run_state(out / "runs" / s.name) == FINISHED}
    todo = [s for s in specs if s.name not in skipped]
    for spec in todo:
        run_steps(spec, scale)  # a bad override is an error before anything is submitted
    out.mkdir(parents=True, exist_ok=True)
    with _submit_lock(out):  # two `reproduce` calls at once must not both submit a run
        records = read_jobs(out)
        states = job_states([r for s in todo for r in records.get(s.name, [])])
        for spec in todo:
            active = [r for r in records.get(spec.name, []) if _job_class(r, states) in ACTIVE]
            if active:
                skipped[spec.name] = ", ".join(f"job {r['job_id']} {_job_class(r, states)}" for r in active)
        todo = [s for s in todo if s.name not in skipped]
        if not todo:
            return Submission({}, skipped, None)
        executor = make_executor(out, options)
        jobs = [_train_job(spec, scale, out, options) for spec in todo]
        submitit = require_submitit()
        try:
            submitted = executor.submit_array(jobs)
        except (
            submitit.core.utils.FailedJobError,
            submitit.core.utils.FailedSubmissionError,
            OSError,
        ) as err:
            raise SinklabError(f"submitting {len(jobs)} job(s) failed: {str(err).strip()}") from None
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for spec, train, job in zip(todo, jobs, submitted, strict=True):
            records.setdefault(spec.name, []).append(
                {
                    "job_id": str(job.job_id),
                    "cluster": options.cluster,
                    "submitted": now,
                    "command": shlex.join(train.command),
                    "job_log": str(job.paths.stderr),
                }
            )
        write_jobs(out, records)
        ids = {s.name: str(j.job_id) for s, j in zip(todo, submitted, strict=True)}
        main_id = ids[todo[0].name].split("_")[0]  # an array's script sits with its main id
        script = submitit.core.utils.JobPaths(executor.folder, job_id=main_id).submission_file
        return Submission(ids, skipped, script if options.cluster == "slurm" else None)


def _train_job(spec: RunSpec, scale: Scale, out: Path, options: SlurmOptions) -> TrainJob:
    run_dir = out / "runs" / spec.name
    state = run_state(run_dir)
    command = job_command(spec, scale, run_dir, state, options.gpus_per_run)
    resume = job_command(spec, scale, run_dir, RESUME, options.gpus_per_run)
    return TrainJob(spec.name, out, command, resume, _job_env(options))


@contextlib.contextmanager
def _submit_lock(out: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(out / ".submit.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for another `reproduce` submitting into the same OUT
        yield
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------------------
# Job records and states


def read_jobs(out: Path) -> dict[str, list[dict[str, str]]]:
    """run -> its jobs, oldest first, from OUT/jobs.json."""
    path = Path(out) / JOBS_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        runs = data["runs"]
        if not isinstance(runs, dict) or not all(isinstance(v, list) for v in runs.values()):
            raise TypeError
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise SinklabError(
            f"{path} is corrupt; sinklab cannot tell which runs have jobs. Check your jobs (squeue --me), "
            "then delete the file: runs with a job running are then guarded by their run directory's lock"
        ) from None
    return runs


def write_jobs(out: Path, records: dict[str, list[dict[str, str]]]) -> None:
    atomic_write_json(Path(out) / JOBS_FILE, {"format": JOBS_FORMAT, "runs": records})


def job_states(records: list[dict[str, str]]) -> dict[str, str]:
    """job id -> the scheduler's state (sacct's, for Slurm; RUNNING or ENDED for a local job)."""
    states = {r["job_id"]: _local_state(r["job_id"]) for r in records if r.get("cluster") == "local"}
    slurm = sorted({r["job_id"] for r in records if r.get("cluster") != "local"})
    if slurm:
        states.update(_sacct(slurm))
    return states


def _local_state(pid: str) -> str:
    """A local job's id is its controller's pid: alive (and still that controller) or ended."""
    try:
        proc = Path(f"/proc/{int(pid)}")
        cmdline, stat = (proc / "cmdline").read_bytes(), (proc / "stat").read_text()
    except (OSError, ValueError):
        return "ENDED"
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    if state == "Z":
        return "ENDED"
    # Our own child may not have exec'd the controller yet; any other process must be that controller.
    return "RUNNING" if b"submitit.local._local" in cmdline or int(ppid) == os.getpid() else "ENDED"


def _sacct(job_ids: list[str]) -> dict[str, str]:
    require_submitit()
    from submitit.slurm.slurm import SlurmInfoWatcher

    main_ids = sorted({j.split("_")[0] for j in job_ids})
    cmd = ["sacct", "-o", "JobID,State", "--parsable2", "-j", ",".join(main_ids)]
    try:
        output = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", None) or err
        raise SinklabError(
            f"cannot read the state of jobs {', '.join(job_ids)}: sacct failed ({str(detail).strip()})"
        ) from None
    info = SlurmInfoWatcher().read_info(output)  # array ranges such as 42_[0-3%2] expanded
    return {j: (info.get(j, {}).get("State") or "UNKNOWN").split()[0] for j in job_ids}  # "CANCELLED by 7"


def _job_class(record: dict[str, str], states: dict[str, str]) -> str:
    """queued, running, unknown, or ended, for one recorded job."""
    state = states.get(record["job_id"], "UNKNOWN")
    if state in SLURM_QUEUED:
        return QUEUED
    if state in SLURM_RUNNING:
        return RUNNING
    if state == "UNKNOWN":
        try:
            age = time.time() - datetime.fromisoformat(record["submitted"]).timestamp()
        except (KeyError, ValueError):
            age = 0.0
        return QUEUED if age < ACCOUNTING_LAG_S else "ended"  # accounting lags behind a fresh submission
    return "ended"


# ----------------------------------------------------------------------------------------------------------
# Status


@dataclass
class RunStatus:
    name: str
    state: str  # finished, running, queued, failed, interrupted, not started, unknown
    step: int  # the last logged step
    steps: int | None  # train.steps of the run, once it has a config
    job: str  # job id(s) and the scheduler's state, or the trainer's pid, or ""
    log: Path
    detail: str = ""  # why it failed


def run_statuses(out: Path, names: list[str]) -> list[RunStatus]:
    out = Path(out)
    records = read_jobs(out)
    note = ""
    try:
        states = job_states([r for n in names for r in records.get(n, [])])
    except SinklabError as err:  # the status still shows what the run directories say
        states, note = {}, str(err)
    return [_run_status(out, name, records.get(name, []), states, note) for name in names]


def _run_status(
    out: Path, name: str, jobs: list[dict[str, str]], states: dict[str, str], note: str
) -> RunStatus:
    run_dir, log = out / "runs" / name, out / "logs" / f"{name}.log"
    step, steps = logged_step(run_dir), _configured_steps(run_dir)

    def status(state: str, job: str = "", detail: str = "") -> RunStatus:
        return RunStatus(name, state, step, steps, job, log, detail)

    last = f"{jobs[-1]['job_id']}" if jobs else ""
    if run_state(run_dir) == FINISHED:
        return status(FINISHED, last)
    if jobs and note:
        return status(UNKNOWN, last, note)
    classes = {r["job_id"]: _job_class(r, states) for r in jobs}
    for wanted in (RUNNING, QUEUED):
        ids = [j for j, c in classes.items() if c == wanted]
        if ids:
            return status(wanted, ", ".join(f"{j} ({states.get(j, 'UNKNOWN')})" for j in ids))
    pid = _trainer_pid(run_dir)
    if pid is not None:
        return status(RUNNING, f"pid {pid}")
    if jobs:
        state = states.get(last, "UNKNOWN")
        error = last_error(log)
        detail = f"job {last} ended {state}{error}; see {log} and {jobs[-1].get('job_log', '')}".rstrip()
        return status(FAILED, f"{last} ({state})", detail)
    error = last_error(log)
    if error:
        return status(FAILED, "", f"{error[2:]}; see {log}")
    if run_state(run_dir) == RESUME or (run_dir / "config.json").exists():
        return status(INTERRUPTED)
    return status(NOT_STARTED)


def _configured_steps(run_dir: Path) -> int | None:
    try:
        return int(json.loads((run_dir / "config.json").read_text())["train"]["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _trainer_pid(run_dir: Path) -> int | None:
    """The pid in DIR/.lock when that process is alive on this machine and is a trainer of this run."""
    try:
        pid = int((run_dir / ".lock").read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return None
    return pid if str(run_dir.resolve()) in cmdline and "sinklab" in cmdline else None


def status_table(statuses: list[RunStatus]) -> str:
    lines = [f"  {'run':24s} {'state':12s} {'step':14s} job"]
    for s in statuses:
        step = f"{s.step}/{s.steps}" if s.steps else (str(s.step) if s.step else "-")
        lines.append(f"  {s.name:24s} {s.state:12s} {step:14s} {s.job}".rstrip())
    counts: dict[str, int] = {}
    details: dict[tuple[str, str], list[str]] = {}  # one line for what several runs share (sacct failing)
    for s in statuses:
        counts[s.state] = counts.get(s.state, 0) + 1
        if s.detail:
            details.setdefault((s.state, s.detail), []).append(s.name)
    order = (FINISHED, RUNNING, QUEUED, FAILED, INTERRUPTED, NOT_STARTED, UNKNOWN)
    lines.append(", ".join(f"{counts[k]} {k}" for k in order if k in counts))
    lines += [f"{state} {', '.join(names)}: {detail}" for (state, detail), names in details.items()]
    return "\n".join(lines)


def print_status(out: Path) -> int:
    """`reproduce --status --out OUT`: one line per run of OUT's sweep."""
    out = Path(out)
    path = out / "sweep.json"
    try:
        sweep = json.loads(path.read_text())
        names = [str(n) for n in sweep["runs"]]
    except FileNotFoundError:
        raise SinklabError(
            f"{out} has no sweep.json: not a reproduce directory (start one with `sinklab reproduce --suite "
            f"NAME --out {out}`)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise SinklabError(f"{path} is corrupt (expected an object with a 'runs' list)") from None
    print(f"{out}: {len(names)} run(s) at scale {sweep.get('scale', '?')}")
    print(status_table(run_statuses(out, names)))
    return 0


def wait_for_runs(
    out: Path, names: list[str], poll_s: float = POLL_S, say: Callable[[str], None] = print
) -> list[RunStatus]:
    """Poll until no run of `names` is queued or running; says each change of state."""
    seen: dict[str, str] = {}
    while True:
        statuses = run_statuses(out, names)
        for s in statuses:
            if seen.get(s.name) != s.state:
                seen[s.name] = s.state
                say(f"  {s.name}: {s.state}{f', job {s.job}' if s.job else ''}")
        if not any(s.state in ACTIVE for s in statuses):
            return statuses
        time.sleep(poll_s)


# ----------------------------------------------------------------------------------------------------------
# `reproduce --launcher slurm`


def dry_run_script(out: Path, options: SlurmOptions, runs: int) -> str:
    """--dry-run: the sbatch script a submission would write (or why there is none here)."""
    if runs == 0:
        return "nothing to submit"
    try:
        return submission_script(make_executor(out, options), runs)
    except SinklabError as err:
        return f"(no sbatch script here: {err})"


def run_slurm(
    specs: list[RunSpec], scale: Scale, out: Path, options: SlurmOptions, wait: bool
) -> dict[str, str] | None:
    """Submit, say what was submitted and skipped; with `wait`, wait and return the failed runs (run ->
    why, with its log), else None."""
    sub = submit_runs(specs, scale, out, options)
    waiting = {name: why for name, why in sub.skipped.items() if why != FINISHED}  # finished: listed above
    if len(waiting) > 4:
        print(f"{len(waiting)} run(s) not submitted: each has a queued or running job (see --status)")
    for name, why in waiting.items() if len(waiting) <= 4 else ():
        print(f"  {name}: not submitted ({why})")
    if sub.submitted:
        pairs = [f"{name} {job}" for name, job in sub.submitted.items()]
        shown = ", ".join(pairs if len(pairs) <= 4 else [*pairs[:2], "...", pairs[-1]])
        print(f"submitted {len(pairs)} job(s): {shown} (all in {Path(out) / JOBS_FILE})")
        if sub.script is not None:
            print(f"sbatch script: {sub.script}")
    else:
        print("nothing to submit: every run is finished, queued or running")
    if not wait:
        print(f"follow with: sinklab reproduce --status --out {out}; when all finish: sinklab report {out}")
        return None
    try:
        statuses = wait_for_runs(out, [s.name for s in specs], poll_s=POLL_S)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; the jobs go on (sinklab reproduce --status --out {out})")
        raise
    return {s.name: s.detail or f"{s.state}; see {s.log}" for s in statuses if s.state != FINISHED}
