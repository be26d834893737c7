"""The opening `sinklab measure` and `sinklab ablate` share: the options made into a config, the model loaded
as a runner, `--length` checked against its positions, and the token ids of `--input`. Each command opens one
measurement and goes on from there; nothing here calls back into a command."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sinklab.measure.checks import MeasureError
from sinklab.measure.config import MeasureConfig
from sinklab.measure.inputs import Inputs, load_inputs
from sinklab.measure.load import load_model, path_notes
from sinklab.observe import BACKEND_SINKLAB, ModelRunner


@dataclass
class Opened:
    """One opened measurement: the model's runner, its name, the ids (S, T) and what loading had to say."""

    runner: ModelRunner
    name: str
    inputs: Inputs
    vocab_size: int  # rows of the input embedding
    draw_size: int | None  # ids random/repeat draw from
    notes: list[str] = field(default_factory=list)  # the loading's (the inputs' are inputs.notes)

    @property
    def ids(self) -> Any:
        return self.inputs.ids

    @property
    def dtype_device(self) -> tuple[str, str]:
        """The model's dtype and device as metrics.json and ablations.json report them."""
        param = next(self.runner.model.parameters())
        return str(param.dtype).removeprefix("torch."), str(param.device)


def open_measurement(model: str | nn.Module, source: str, cfg: MeasureConfig, command: str) -> Opened:
    """Load `model` as `cfg` says, warn (stderr and notes) when cfg.length is past its positions, and read
    the token ids of `source`."""
    loaded = load_model(model, cfg)
    for note in path_notes(loaded.runner):
        print(f"sinklab {command}: {note}", file=sys.stderr)
    warning = check_length(loaded.runner, cfg.length)
    if warning is not None:
        print(f"sinklab {command}: warning: {warning}", file=sys.stderr)
        loaded.notes.append(warning)
    inputs = load_inputs(
        source, length=cfg.length, samples=cfg.samples, bos=cfg.bos, pack=cfg.pack, **loaded.vocabulary()
    )
    return Opened(loaded.runner, loaded.name, inputs, loaded.vocab_size, loaded.draw_size, loaded.notes)


def _learned_position_table(net: nn.Module) -> nn.Embedding | None:
    """An HF model's absolute position table (GPT-2 `wpe`, OPT `embed_positions`): no row past its end."""
    tokens = net.get_input_embeddings() if hasattr(net, "get_input_embeddings") else None
    for name, module in net.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        positional = leaf == "wpe" or "position" in leaf
        if isinstance(module, nn.Embedding) and module is not tokens and positional:
            return module
    return None


def check_length(runner: ModelRunner, length: int) -> str | None:
    """--length against the model's positions: an error where a learned position table ends (no position
    past it exists), a warning (returned) where RoPE & co. would run on positions never trained."""
    net = runner.model
    cfg = getattr(net, "config", None)
    if runner.backend == BACKEND_SINKLAB:
        context = getattr(cfg, "context", None)
        if context is None:
            return None
        n_sink = 1 if getattr(net, "sink_token", None) is not None else 0  # a sink token takes a position
        if length + n_sink <= context:
            return None
        if getattr(cfg, "position", None) == "learned":
            raise MeasureError(
                f"--length {length} is longer than the model allows: its learned positions cover "
                f"model.context={context} tokens{' (one is its sink token)' if n_sink else ''}; "
                f"use --length {context - n_sink} or less"
            )
        return (
            f"--length {length} is longer than model.context={context} the model was built for: "
            f"its {getattr(cfg, 'position', '')} positions past {context} were never trained"
        )
    text_cfg = cfg.get_text_config() if cfg is not None and hasattr(cfg, "get_text_config") else cfg
    limit = getattr(text_cfg, "max_position_embeddings", None)
    table = _learned_position_table(net)
    if table is not None:
        limit = int(limit) if limit else int(table.num_embeddings)
        if length > limit:
            raise MeasureError(
                f"--length {length} is longer than the model allows: its learned position table has "
                f"{limit} positions (max_position_embeddings / n_positions); use --length {limit} or less"
            )
        return None
    if limit and length > int(limit):
        return (
            f"--length {length} is past the model's max_position_embeddings={limit}: positions beyond it "
            "were never trained (RoPE and the like run on them without failing), so the result may not "
            "show how the model behaves"
        )
    return None
