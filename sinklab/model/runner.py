"""The runner of sinklab's own model (`sinklab.observe.ModelRunner`): SinkLM runs natively, its attention
modules feed the observer and apply an edit on every path, whatever the options (kernel, mask, K/V bias,
sink token, gate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from sinklab.observe import BACKEND_SINKLAB, QUERY_BLOCK, ModelRunner

if TYPE_CHECKING:
    import torch

    from sinklab.model.edits import AttentionEdit
    from sinklab.observe import AttentionObserver


@dataclass
class SinkLMRunner(ModelRunner):
    model: nn.Module
    name: str = ""
    query_block: int = QUERY_BLOCK
    backend: str = BACKEND_SINKLAB

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.layers

    @property
    def lead(self) -> int:
        return int(self.model.sink_token is not None)

    def _run(
        self,
        ids: torch.Tensor,
        observer: AttentionObserver | None,
        edit: AttentionEdit | None,
        all_logits: bool,
    ):
        return self.model(ids, record=observer, edit=edit, logits_to_keep=0 if all_logits else 1)
