"""A checkpoint series in training order: what `sinklab trajectory CHECKPOINT...` names, resolved.

A CHECKPOINT is
- a model folder (HF or sinklab), whose step comes from its name (`checkpoint-N`, `step-N`, `step_N`,
  `stepN`, `iter-N`) or its own files (HF Trainer's trainer_state.json `global_step`, a sinklab checkpoint's
  state.json `step`);
- a folder that holds a series: `checkpoint-*` (HF Trainer), `step-*` (litgpt, converted to HF format),
  sinklab's `checkpoints/step_*` (a run folder or its checkpoints/ folder);
- a hub id with a revision, `ORG/NAME@REV` (the step from the revision name: `step1000` is 1000), or one hub
  id with `--revisions` (a list and / or ranges, see `expand_revisions`).
Tokens come from the checkpoint's own files (sinklab state.json `tokens`, trainer_state.json
`num_input_tokens_seen`), else step x --tokens-per-step, else they are unknown.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sinklab.errors import SinklabError
from sinklab.measure.checks import has_sinklab_config

# Folder names of one checkpoint, and what each convention is.
STEP_NAME = re.compile(r"^(?:checkpoint|step|iter)[-_]?(\d+)$")
CONVENTIONS = (
    ("checkpoint-*", "HF Trainer"),
    ("step-*", "litgpt (converted to HF format)"),
    ("checkpoints/step_*", "a sinklab run"),
)
ACCEPTED = (
    "a CHECKPOINT is a model folder named or holding its step (checkpoint-N, step-N, step_N), a folder "
    "holding a series (checkpoint-* (HF Trainer), step-* (litgpt), a sinklab run's checkpoints/step_*), "
    "ORG/NAME@REVISION, or one hub id with --revisions"
)


@dataclass
class Checkpoint:
    """One checkpoint of the series: `label` names its folder under OUT/measured/."""

    source: str  # as the user named it: a folder, or ORG/NAME@REV
    step: int
    tokens: int | None = None
    path: Path | None = None  # the local folder (a hub revision's snapshot once fetched)
    repo: str | None = None  # hub id, for a hub revision
    revision: str | None = None

    @property
    def label(self) -> str:
        return f"step_{self.step:09d}"

    @property
    def on_hub(self) -> bool:
        return self.repo is not None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SinklabError(f"{path}: not readable JSON ({err})") from None
    return data if isinstance(data, dict) else {}


def step_and_tokens(folder: Path) -> tuple[int | None, int | None]:
    """(step, tokens) from a checkpoint's own files, then its name; None where neither says."""
    step: int | None = None
    tokens: int | None = None
    state = folder / "state.json"  # a sinklab checkpoint
    if state.is_file() and has_sinklab_config(folder):
        data = _read_json(state)
        step = data.get("step") if isinstance(data.get("step"), int) else None
        tokens = data.get("tokens") if isinstance(data.get("tokens"), int) else None
    trainer = folder / "trainer_state.json"  # HF Trainer
    if step is None and trainer.is_file():
        data = _read_json(trainer)
        step = data.get("global_step") if isinstance(data.get("global_step"), int) else None
        seen = data.get("num_input_tokens_seen")
        tokens = seen if isinstance(seen, int) and seen > 0 else None
    if step is None and (match := STEP_NAME.match(folder.name)):
        step = int(match.group(1))
    return step, tokens


def is_model_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def series_members(folder: Path) -> list[Path]:
    """The checkpoints a series folder holds, by the conventions; [] if it holds none."""
    for root in (folder / "checkpoints", folder):
        if not root.is_dir():
            continue
        found = [p for p in root.iterdir() if p.is_dir() and STEP_NAME.match(p.name) and is_model_folder(p)]
        if found:
            return found
    return []


def _local(arg: str, tokens_per_step: int | None) -> list[Checkpoint]:
    folder = Path(arg).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"checkpoint {arg!r} does not exist; {ACCEPTED}")
    if not folder.is_dir():
        raise SinklabError(f"checkpoint {arg!r} is a file; {ACCEPTED}")
    members = series_members(folder)
    if not members:
        if not is_model_folder(folder):
            hint = (
                " (litgpt's lit_model.pth: convert it to HF format first, litgpt convert_from_litgpt)"
                if any(folder.rglob("lit_model.pth"))
                else ""
            )
            raise SinklabError(f"{arg!r} holds no checkpoints{hint}; {ACCEPTED}")
        members = [folder]
    out = []
    for path in members:
        step, tokens = step_and_tokens(path)
        if step is None:
            raise SinklabError(
                f"cannot tell the training step of {path}: its name is not checkpoint-N / step-N / step_N "
                "and it has no trainer_state.json or sinklab state.json; rename it after its step"
            )
        if tokens is None and tokens_per_step is not None:
            tokens = step * tokens_per_step
        out.append(Checkpoint(source=str(path), step=step, tokens=tokens, path=path))
    return out


def revision_step(revision: str) -> int | None:
    """The step a hub revision names: the digits of `step1000`, `checkpoint-1000`, `iter_1000`."""
    match = re.fullmatch(r"(?:[A-Za-z_-]*?)(\d+)", revision)
    return int(match.group(1)) if match else None


def expand_revisions(text: str) -> list[str]:
    """--revisions: comma-separated names and ranges. A range PREFIX<start>:<stop>:<stride> runs from start to
    stop inclusive, adding `stride` (`step0:143000:1000`) or multiplying by it when written xN
    (`step1:512:x2`: step1, step2, step4, ..., step512)."""
    names: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if ":" not in item:
            names.append(item)
            continue
        parts = item.split(":")
        match = re.fullmatch(r"(.*?)(\d+)", parts[0])
        multiply = len(parts) == 3 and parts[2].startswith("x")
        stride = parts[2][1:] if multiply else (parts[2] if len(parts) == 3 else "")
        if len(parts) != 3 or match is None or not parts[1].isdigit() or not stride.isdigit():
            raise SinklabError(
                f"--revisions range {item!r} is not PREFIX<start>:<stop>:<stride>; accepted: names and "
                "ranges separated by commas, e.g. step0,step1:512:x2,step1000:143000:1000"
            )
        prefix, value, stop, step = match.group(1), int(match.group(2)), int(parts[1]), int(stride)
        if step < (2 if multiply else 1) or (multiply and value == 0) or stop < value:
            raise SinklabError(f"--revisions range {item!r} is empty or never ends (stride {parts[2]})")
        while value <= stop:
            names.append(f"{prefix}{value}")
            value = value * step if multiply else value + step
    return list(dict.fromkeys(names))


def _hub(repo: str, revision: str, tokens_per_step: int | None) -> Checkpoint:
    step = revision_step(revision)
    if step is None:
        raise SinklabError(
            f"cannot tell the training step of {repo}@{revision}: the revision name holds no step number "
            "(accepted: names like step1000)"
        )
    tokens = step * tokens_per_step if tokens_per_step is not None else None
    return Checkpoint(source=f"{repo}@{revision}", step=step, tokens=tokens, repo=repo, revision=revision)


def resolve_series(
    checkpoints: list[str], revisions: str | None = None, tokens_per_step: int | None = None
) -> list[Checkpoint]:
    """Every checkpoint named, in training order (by step); a step named twice is an error."""
    if not checkpoints:
        raise SinklabError(f"no CHECKPOINT given; {ACCEPTED}")
    if tokens_per_step is not None and tokens_per_step < 1:
        raise SinklabError(f"--tokens-per-step must be an integer >= 1, got {tokens_per_step}")
    series: list[Checkpoint] = []
    if revisions is not None:
        if len(checkpoints) != 1 or "@" in checkpoints[0] or Path(checkpoints[0]).expanduser().exists():
            raise SinklabError(
                "--revisions takes exactly one hub id (ORG/NAME, without @REV) as the CHECKPOINT, got "
                + " ".join(checkpoints)
            )
        names = expand_revisions(revisions)
        if not names:
            raise SinklabError("--revisions names no revision")
        series = [_hub(checkpoints[0], name, tokens_per_step) for name in names]
    else:
        for arg in checkpoints:
            if "@" in arg and not Path(arg).expanduser().exists():
                repo, _, revision = arg.partition("@")
                if not repo or not revision:
                    raise SinklabError(f"checkpoint {arg!r}: expected ORG/NAME@REVISION; {ACCEPTED}")
                series.append(_hub(repo, revision, tokens_per_step))
            else:
                series.extend(_local(arg, tokens_per_step))
    by_step: dict[int, Checkpoint] = {}
    for ckpt in series:
        if ckpt.step in by_step and by_step[ckpt.step].source != ckpt.source:
            raise SinklabError(
                f"step {ckpt.step} is named twice ({by_step[ckpt.step].source} and {ckpt.source}): a "
                "trajectory is one training run, one checkpoint per step"
            )
        by_step[ckpt.step] = ckpt
    return [by_step[s] for s in sorted(by_step)]
