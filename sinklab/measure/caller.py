"""What the Python entry points (`sinklab.measure_model`, `sinklab.ablate_model`) do for a notebook caller
that the command line does not need:

- `check_keywords`: a keyword typo is answered with the closest accepted names;
- `python_names`: errors name Python arguments (`tokenizer=`, `source`) instead of the CLI's flags;
- `token_ids`: a token-id tensor, array or list as the input;
- `preserved`: the caller's model comes back exactly as it came (attention implementation, device, dtype,
  training mode of every module, no hook left behind).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sinklab.errors import SinklabError

# The CLI's names of the entry points' positional arguments.
POSITIONAL = {"--input": "source", "--model": "model", "--out": "out", "--ablations": "ablations"}


class KeywordError(SinklabError, TypeError):
    """An unknown keyword argument (a TypeError, as Python's own; a SinklabError for the message)."""


def did_you_mean(name: str, accepted: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest accepted name, or ""."""
    close = difflib.get_close_matches(name, list(accepted), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def check_keywords(function: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """KeywordError naming the closest accepted names for each keyword `function` does not take."""
    accepted = sorted(set(accepted))
    for name in given:
        if name not in accepted:
            raise KeywordError(
                f"{function}() got an unexpected keyword argument {name!r}{did_you_mean(name, accepted)} "
                f"(accepted: {', '.join(accepted)})"
            )


def to_python_names(message: str) -> str:
    """'--batch-size 0 ...' -> 'batch_size=0 ...'; '--input' -> 'source' (the argument's name)."""

    def replace(match: re.Match[str]) -> str:
        flag, space = match.group(1), match.group(2)
        if flag in POSITIONAL:
            return POSITIONAL[flag] + (space or "")
        return flag[2:].replace("-", "_") + ("=" if space else "")

    # "=" only where a number, quoted string or path follows ("--length 8" -> "length=8"; "--batch-size must
    # be" -> "batch_size must be")
    return re.sub(r"(?<![\w-])(--[a-z][a-z0-9-]*)( (?=[\d'\"/.~]|-\d))?", replace, message)


@contextmanager
def python_names() -> Iterator[None]:
    """Re-raise a SinklabError / ValueError whose message names CLI flags with the Python names."""
    try:
        yield
    except (SinklabError, ValueError) as err:
        text = str(err)
        if "--" not in text or not err.args:
            raise
        try:
            renamed = type(err)(to_python_names(text))
        except Exception:  # an exception class with another signature: keep the original
            raise err from None
        raise renamed.with_traceback(err.__traceback__) from None


def token_ids(source: Any) -> Any | None:
    """A (samples, T) long tensor from a tensor, numpy array or (nested) list of token ids; None for a SPEC
    string. One sequence (1-D) is one sample."""
    if isinstance(source, str):
        return None
    import numpy as np
    import torch

    if isinstance(source, torch.Tensor):
        ids = source.detach().cpu()
    elif isinstance(source, (np.ndarray, list, tuple)):
        try:
            ids = torch.as_tensor(np.asarray(source))
        except (ValueError, TypeError):
            raise SinklabError(
                "source: token ids must be a rectangular (samples, T) list, array or tensor of integers "
                "(one row per sample, all of one length)"
            ) from None
    else:
        raise SinklabError(
            f"source must be an input SPEC string (random, text:FILE, ids:FILE.jsonl, hf:DATASET, ...) or "
            f"token ids (a tensor, array or list), got {type(source).__name__}"
        )
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[1] < 2 or ids.shape[0] < 1:
        raise SinklabError(
            f"source: token ids must be (samples, T) with T >= 2, got shape {tuple(ids.shape)}"
        )
    if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.dtype.is_complex:
        raise SinklabError(f"source: token ids must be integers, got {ids.dtype}")
    if int(ids.min()) < 0:
        raise SinklabError(f"source: token ids must be >= 0, got {int(ids.min())}")
    return ids.long()


# ---- the caller's model, returned as it came -------------------------------------------------------------
def _configs(model: Any) -> list[Any]:
    """The model's configs and sub-configs that carry an attention implementation."""
    seen: dict[int, Any] = {}
    for module in model.modules():
        cfg = getattr(module, "config", None)
        if cfg is None or id(cfg) in seen or not hasattr(cfg, "_attn_implementation"):
            continue
        seen[id(cfg)] = cfg
        for name in getattr(cfg, "sub_configs", {}) or {}:
            sub = getattr(cfg, name, None)
            if sub is not None and hasattr(sub, "_attn_implementation"):
                seen.setdefault(id(sub), sub)
    return list(seen.values())


def _attn(cfg: Any) -> Any:
    for name in ("_attn_implementation_internal", "_attn_implementation"):
        if name in vars(cfg):
            return name, vars(cfg)[name]
    return "_attn_implementation", getattr(cfg, "_attn_implementation", None)


@contextmanager
def preserved(model: Any) -> Iterator[None]:
    """Run a measurement on the caller's `model` and give it back as it came: each config's attention
    implementation, each parameter's and buffer's device and dtype, each module's training flag, and no
    forward hook or pre-hook that was not there before. A string model (loaded here) needs none of this."""
    from torch import nn

    if not isinstance(model, nn.Module):
        yield
        return
    attn = [(cfg, *_attn(cfg)) for cfg in _configs(model)]
    training = [(m, m.training) for m in model.modules()]
    tensors = [(t, t.device, t.dtype) for t in [*model.parameters(), *model.buffers()]]
    hooks = [
        (m, {name: set(getattr(m, name)) for name in _HOOK_DICTS if hasattr(m, name)})
        for m in model.modules()
    ]
    try:
        yield
    finally:
        for m, before in hooks:
            for name, keys in before.items():
                table = getattr(m, name)
                for key in [k for k in table if k not in keys]:
                    del table[key]
                    getattr(m, name.replace("hooks", "hooks_with_kwargs"), {}).pop(key, None)
                    getattr(m, "_forward_hooks_always_called", {}).pop(key, None)
        for t, device, dtype in tensors:
            if t.device != device or t.dtype != dtype:
                t.data = t.data.to(device=device, dtype=dtype)
                if t.grad is not None:
                    t.grad = t.grad.to(device=device, dtype=dtype)
        for m, flag in training:
            m.training = flag
        for cfg, name, value in attn:
            vars(cfg)[name] = value


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks")
