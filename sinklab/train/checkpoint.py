"""Checkpoints: safetensors weights (a loadable sinklab model dir), optimizer, RNG and data-order state.

Layout of DIR/checkpoints/step_XXXXXXX/:
  config.json + model.safetensors   `sinklab.model.load_pretrained` and `sinklab measure` read these
  optimizer.pt                      full (unsharded) optimizer state keyed by parameter name
  rng.pt                            torch CPU / CUDA generator states
  state.json                        step, tokens, data order, loss accumulator, Python/NumPy RNG, and the
                                    run's settings with their digest (every setting that changes numbers)
A checkpoint is written into a temporary folder and renamed into place in one step, so a listed
step folder is always complete, and the temporary folder is removed on every way out (an error, a
full disk, Ctrl-C); anything wrong when reading one is an error, never a fresh start.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from sinklab.config import to_dict
from sinklab.errors import SinklabError
from sinklab.io import atomic_write_json
from sinklab.model import ModelConfig, SinkLM, load_pretrained, save_pretrained
from sinklab.model.transformer import legacy_groups, upgrade_state_dict
from sinklab.train.distributed import DistEnv

FORMAT = "sinklab-checkpoint"
FORMAT_VERSION = 1
STEP_PREFIX = "step_"
FILES = ("config.json", "model.safetensors", "optimizer.pt", "rng.pt", "state.json")
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"{STEP_PREFIX}{step:07d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of an interrupted write are ignored)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX)]
    return sorted(found, key=lambda p: p.name)


def config_digest(sections: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(sections, sort_keys=True).encode()).hexdigest()[:16]


def run_settings(cfg: Any) -> dict[str, Any]:
    """The settings of a RunConfig that change the numbers: all of them but those a resume may change."""
    from sinklab.train.config import RESUME_KEYS

    settings = json.loads(json.dumps(to_dict(cfg)))  # tuples as lists, as state.json stores them
    for key in RESUME_KEYS:
        section, name = key.split(".")
        settings[section].pop(name, None)
    return settings


def legacy_digest(cfg: Any) -> str:
    """The digest of checkpoints written before it covered the whole run (model and data only)."""
    return config_digest({"model": to_dict(cfg.model), "data": to_dict(cfg.data)})


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded state dict on CPU (a collective under FSDP: every rank must call it)."""
    return get_model_state_dict(model, options=_FULL)


def save_model_dir(env: DistEnv, model: nn.Module, cfg: ModelConfig, directory: Path) -> None:
    """Write a sinklab model dir from a possibly wrapped/sharded model (all ranks call, rank 0 writes)."""
    inner = env.unwrap(model)
    if env.mode == "fsdp":
        state = full_model_state(model)
        if env.is_main:
            plain = SinkLM(cfg)
            plain.load_state_dict(state)
            save_pretrained(plain, directory)
    elif env.is_main:
        save_pretrained(inner, directory)


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    plain = {
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
        "python": [py[0], list(py[1]), py[2]],
    }
    return tensors, plain


def save_checkpoint(
    env: DistEnv,
    run_dir: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: ModelConfig,
    state: dict[str, Any],
    keep: int = 0,
) -> Path | None:
    """All ranks call (gathering shards); rank 0 writes step_XXXXXXX atomically and prunes old ones."""
    tmp = _tmp_dir(run_dir, step)
    if env.is_main:
        shutil.rmtree(tmp, ignore_errors=True)  # left over by a run killed while writing
    try:
        optim_state = get_optimizer_state_dict(model, optimizer, options=_FULL)  # a collective under FSDP
        save_model_dir(env, model, cfg, tmp)
        if not env.is_main:
            return None
        final = step_dir(run_dir, step)
        torch.save(optim_state, tmp / "optimizer.pt")
        tensors, plain = _rng_state()
        torch.save(tensors, tmp / "rng.pt")
        atomic_write_json(
            tmp / "state.json",
            {"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, "rng": plain, **state},
        )
        if final.exists():  # re-saving a step after a resume: move the old one aside first
            trash = final.with_name(f".old_{final.name}")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, final)
    except Exception as err:
        if _disk_full(err, run_dir) and not isinstance(err, OSError):
            # torch and safetensors report a full disk as their own errors; the CLI explains ENOSPC
            raise OSError(errno.ENOSPC, f"no space left writing checkpoint {tmp}: {err}", str(tmp)) from err
        raise
    finally:
        if env.is_main:  # a half-written checkpoint is never left behind, whatever stopped it
            shutil.rmtree(tmp, ignore_errors=True)
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _disk_full(err: BaseException, where: Path) -> bool:
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    text = str(err)
    if "No space left" in text or "os error 28" in text:
        return True
    try:  # torch says only "file write failed": judge by what is left on the device
        return shutil.disk_usage(where).free < 64 * 2**20
    except OSError:
        return False


def _tmp_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f".tmp_{STEP_PREFIX}{step:07d}"


@dataclass
class Checkpoint:
    path: Path
    state: dict[str, Any]  # state.json
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    rng: dict[str, torch.Tensor]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def load_checkpoint(path: Path, expected: ModelConfig, run: Any = None) -> Checkpoint:
    """Read and check a checkpoint; a missing file, corruption, a different model or, given the run's
    RunConfig `run`, a checkpoint of a run with other settings (copied from another run) is a clear error."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise SinklabError(f"checkpoint {path} is incomplete or corrupt: missing {', '.join(missing)}")
    try:
        state = json.loads((path / "state.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SinklabError(f"checkpoint {path}: state.json is corrupt ({err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "step" not in state:
        raise SinklabError(f"checkpoint {path}: state.json is not a {FORMAT} file")
    if state.get("format_version", 1) > FORMAT_VERSION:
        raise SinklabError(
            f"checkpoint {path} has format_version {state['format_version']}, newer than this sinklab"
        )
    if run is not None:
        _check_same_run(path, state, run)
    try:
        model = load_pretrained(path)
    except (ValueError, FileNotFoundError) as err:
        raise SinklabError(f"checkpoint {path}: {err}") from None
    if to_dict(model.config) != to_dict(expected):
        a, b = to_dict(model.config), to_dict(expected)
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise SinklabError(
            f"checkpoint {path} holds a different model (differs in model.{', model.'.join(diff)})"
        )
    try:
        optimizer_state = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
        rng = torch.load(path / "rng.pt", map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise SinklabError(
            f"checkpoint {path}: optimizer.pt or rng.pt is corrupt ({type(err).__name__}: {err})"
        ) from None
    return Checkpoint(path, state, model.state_dict(), upgrade_optimizer_state(optimizer_state), rng)


def upgrade_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """A full optimizer state dict (keyed by parameter names) of a checkpoint written with separate q/k/v
    and gate/up matrices, in the fused layout: AdamW's moments are element-wise, so concatenating each
    group's tensors (as the weights are) continues the run exactly; step counts are equal within a group."""
    per_param = state.get("state")
    if not isinstance(per_param, dict) or not legacy_groups(list(per_param)):
        return state

    def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            key: torch.cat([p[key] for p in parts]) if parts[0][key].dim() else parts[0][key]
            for key in parts[0]
        }

    groups = legacy_groups(list(per_param))
    merged_away = {n for _, separate in groups for n in separate[1:]}
    first = {separate[0]: fused for fused, separate in groups}  # the fused parameter takes its place
    param_groups = [
        {**group, "params": [first.get(n, n) for n in group["params"] if n not in merged_away]}
        for group in state.get("param_groups", [])
    ]
    return {**state, "state": upgrade_state_dict(per_param, merge), "param_groups": param_groups}


def _check_same_run(path: Path, state: dict[str, Any], run: Any) -> None:
    """Refuse a checkpoint whose recorded settings are not the run's (a checkpoint copied from another
    run with another lr or seed would otherwise continue silently under this run's name)."""
    recorded = state.get("config_digest")
    if recorded is None:
        return  # written before digests existed: nothing to compare
    if "settings" not in state:  # older checkpoints: the digest covers the model and data sections only
        if recorded == legacy_digest(run):
            return
        raise SinklabError(
            f"checkpoint {path} was written by a run with a different model or data configuration; resume "
            "it from its own run directory"
        )
    settings = run_settings(run)
    if recorded == config_digest(settings):
        return
    from sinklab.train.rundir import dict_differences

    diffs = dict_differences(state["settings"], settings)
    raise SinklabError(
        f"checkpoint {path} was written by a run with other settings (checkpoint -> this run: "
        f"{'; '.join(diffs[:6]) or 'the digest differs'}{' ...' if len(diffs) > 6 else ''}); a checkpoint "
        "continues only the run that wrote it: resume that run's directory, or start this one again"
    )


def restore_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    try:
        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
    except (KeyError, ValueError, RuntimeError) as err:
        raise SinklabError(
            f"the checkpoint's optimizer state does not fit this model/optimizer: {err}"
        ) from None


def restore_rng(ckpt: Checkpoint) -> None:
    torch.set_rng_state(ckpt.rng["torch"])
    cuda = [ckpt.rng[k] for k in sorted(ckpt.rng) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    plain = ckpt.state.get("rng", {})
    if "numpy" in plain:
        kind, keys, pos, has_gauss, cached = plain["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "python" in plain:
        version, internal, gauss = plain["python"]
        random.setstate((version, tuple(internal), gauss))
