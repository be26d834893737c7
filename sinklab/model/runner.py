"""The runner of sinklab's own model (the `sinklab.observe.ModelRunner` protocol): SinkLM runs natively, its
attention modules feed the observer and apply an edit on every path, whatever the options (kernel, mask,
K/V bias, sink token, gate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from sinklab.observe import BACKEND_SINKLAB, QUERY_BLOCK

if TYPE_CHECKING:
    from sinklab.model.edits import AttentionEdit
    from sinklab.observe import AttentionObserver


@dataclass
class SinkLMRunner:
    model: nn.Module
    name: str = ""
    query_block: int = QUERY_BLOCK
    backend: str = BACKEND_SINKLAB
    can_edit: bool = True

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.layers

    @property
    def lead(self) -> int:
        return int(self.model.sink_token is not None)

    @torch.no_grad()
    def forward(
        self,
        ids: torch.Tensor,
        observer: AttentionObserver | None,
        edit: AttentionEdit | None = None,
        *,
        all_logits: bool = True,
    ) -> torch.Tensor:
        return self.model(
            ids.to(self.device), record=observer, edit=edit, logits_to_keep=0 if all_logits else 1
        )
