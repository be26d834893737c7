"""Save and load a SinkLM: config.json ({"format": "sinklab", "version", "config"}), model.safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sinklab import __version__
from sinklab.config import from_dict, to_dict
from sinklab.io import atomic_write, atomic_write_json
from sinklab.model.config import ModelConfig
from sinklab.model.transformer import SinkLM, upgrade_state_dict

FORMAT = "sinklab"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_pretrained(model: SinkLM, directory: str | Path) -> Path:
    """Write directory/config.json and directory/model.safetensors (each atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        state.pop("lm_head.weight", None)  # safetensors refuses shared storage; rebuilt by tying on load
    atomic_write(directory / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "config": to_dict(model.config),
    }
    atomic_write_json(directory / CONFIG_NAME, meta)
    return directory


def _read_meta(directory: Path) -> dict:
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a sinklab model directory: no {CONFIG_NAME}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f'{path} is not a sinklab model config (expected "format": "{FORMAT}")')
    if meta.get("format_version", 1) > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {meta['format_version']}; this sinklab reads up to {FORMAT_VERSION}"
        )
    if not isinstance(meta.get("config"), dict):
        raise ValueError(f'{path} has no "config" mapping')
    return meta


def is_sinklab_model_dir(path: str | Path) -> bool:
    """True when `path` holds a sinklab config.json and weights (no exception for anything else)."""
    path = Path(path)
    try:
        _read_meta(path)
    except (OSError, ValueError):
        return False
    return (path / WEIGHTS_NAME).is_file()


def load_config(directory: str | Path) -> ModelConfig:
    meta = _read_meta(Path(directory))
    try:
        return from_dict(ModelConfig, meta["config"], where="model.")
    except (TypeError, ValueError, KeyError) as err:
        message = err.args[0] if err.args else err
        raise ValueError(f"{Path(directory) / CONFIG_NAME}: incompatible model config: {message}") from None


def load_pretrained(directory: str | Path, map_location: str | torch.device = "cpu") -> SinkLM:
    """Rebuild the model from its config and load its weights strictly (missing/unexpected keys: errors).
    Weights saved with separate q/k/v and gate/up matrices (before they were fused) are fused on load."""
    directory = Path(directory)
    cfg = load_config(directory)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{directory}: no {WEIGHTS_NAME}")
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{weights} is corrupt or not a safetensors file: {err}") from None
    state = upgrade_state_dict(state)  # separate q/k/v and gate/up matrices of older files: fused
    with torch.device("meta"):
        model = SinkLM(cfg)
    model = model.to_empty(device=map_location)
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state.get("embed_tokens.weight")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{weights} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    bad = [k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
    if bad:
        k = bad[0]
        raise ValueError(
            f"{weights}: {k} has shape {tuple(state[k].shape)}, the config needs {tuple(expected[k].shape)}"
        )
    model.load_state_dict(state, strict=True, assign=False)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    # Non-persistent buffers (RoPE frequencies, ALiBi slopes) were left empty by to_empty: rebuild them.
    _restore_nonpersistent(model, cfg)
    model.eval()
    return model


def _restore_nonpersistent(model: SinkLM, cfg: ModelConfig) -> None:
    from sinklab.model.positions import POSITIONS

    fresh = POSITIONS.get(cfg.position)(cfg)
    for name, buf in fresh.named_buffers():
        getattr(model.position, name).copy_(buf)
