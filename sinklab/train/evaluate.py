"""Training-time evaluation: validation loss and the paper's sink metric through the shared metric code.

The sink is measured exactly as `sinklab measure` does: the same loop (`sinklab.observe.observe`) feeds an
AttentionRecord, and `summarize_alpha` turns the per-sample alpha into Sink_k, per-layer Sink_k and mean
alpha_1.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from sinklab.measure.analysis import metrics_document
from sinklab.measure.metrics import sink_percent, summarize_alpha, window_alpha
from sinklab.measure.record import AttentionRecord, RecordResult
from sinklab.model.loss import target_weights
from sinklab.model.runner import SinkLMRunner
from sinklab.observe import BACKEND_SINKLAB, observe

LOG_POSITIONS = 10  # the pre-train eval of the paper prints the first 10 positions


def target_mask(model: nn.Module, context: int) -> torch.Tensor:
    """(context,) bool over the targets of a packed block of context + 1 tokens (target j = token j + 1).

    The model's `loss_mask(T)` is over the tokens of a sequence (token 0 is never a target; a prefix LM
    also drops tokens 1..p-1), so the targets' mask is its entries 1..context."""
    return model.loss_mask(context + 1)[1:]


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (fp32) over the target positions the model's loss mask keeps; logits (B, T, V)."""
    # Training fuses the head into this loss (sinklab.model.loss); here it is read off given logits, for
    # validation and tests, so plain autograd suffices.
    weights = target_weights(targets, mask)
    logp = torch.log_softmax(logits.float().flatten(0, 1), dim=-1)
    return -(logp.gather(1, targets.flatten().unsqueeze(1)).squeeze(1) * weights).sum()


def training_loss(forward: Any, batch: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The loss of a training step on a (B, context + 1) batch: `masked_loss` of the model's logits, computed
    by the model with the head fused into the loss (no (B, T, V) logits; sinklab.model.loss)."""
    return forward(batch[:, :-1], targets=batch[:, 1:], target_mask=mask)


@torch.no_grad()
def validation_loss(
    model: nn.Module, sequences: torch.Tensor, mask: torch.Tensor, batch_size: int, autocast: Any
) -> float:
    """Mean loss over (N, context + 1) validation sequences (every batch weighs by its target count)."""
    total, count = 0.0, 0.0
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        with autocast():
            logits = model(batch[:, :-1])
        n = float(mask.sum()) * len(batch)
        total += float(masked_loss(logits, batch[:, 1:], mask)) * n
        count += n
    return total / count


@torch.no_grad()
def record_sink(
    model: nn.Module, ids: torch.Tensor, batch_size: int, autocast: Any, *, analyses: bool = False
) -> RecordResult:
    """Run the model over the evaluation ids (N, T) feeding one AttentionRecord."""
    record = AttentionRecord(analyses=analyses)
    with autocast():
        observe(SinkLMRunner(model), ids, record, batch_size)
    return record.result()


def log_fields(
    result: RecordResult, eps_list: tuple[float, ...], window: int | None = None
) -> dict[str, Any]:
    """The sink fields of a log.jsonl line (`window`: also the window-normalised Sink_k)."""
    summary = summarize_alpha(result.alpha, eps_list)
    fields: dict[str, Any] = {
        "sink_1": summary["sink_percent"][0],
        "sink_percent": summary["sink_percent"][:LOG_POSITIONS],
        "mean_first_alpha": summary["mean_first_alpha"],
        "sink_percent_by_layer": [row[:LOG_POSITIONS] for row in summary["sink_percent_by_layer"]],
    }
    if len(eps_list) > 1:
        fields["sink_percent_by_eps"] = {
            k: v[:LOG_POSITIONS] for k, v in summary["sink_percent_by_eps"].items()
        }
    if result.slot_alpha is not None:
        fields["slot_alpha"] = float(result.slot_alpha.mean())
        fields["slot_sink_percent"] = float((result.slot_alpha > eps_list[0]).mean() * 100.0)
    if window is not None:
        fields["sink_percent_window"] = window_sink_percent(result, eps_list, window)[:LOG_POSITIONS]
    if result.alpha_raw is not None:
        fields["sink_percent_raw"] = summarize_alpha(result.alpha_raw, eps_list)["sink_percent"][
            :LOG_POSITIONS
        ]
    return fields


def window_sink_percent(result: RecordResult, eps_list: tuple[float, ...], window: int) -> list[float]:
    """Sink_k at the headline epsilon with alpha normalised by the queries a window lets see each key."""
    return [float(x) for x in sink_percent(window_alpha(result.alpha, window), eps_list[0])]


def metrics_json(
    result: RecordResult, eps_list: tuple[float, ...], model_name: str, window: int | None = None
) -> dict[str, Any]:
    """The final metrics.json: the same document `sinklab measure` writes (one writer, schema 1), plus the
    window-normalised Sink_k for windowed runs."""
    extra = {} if window is None else {"sink_percent_window": window_sink_percent(result, eps_list, window)}
    return metrics_document(
        result,
        eps_list,
        model=model_name,
        length=int(result.alpha.shape[-1]),
        skipped=0,
        backend=BACKEND_SINKLAB,
        **extra,
    )


def autocast_for(device: torch.device, precision: str) -> Any:
    """A factory of autocast contexts: bfloat16 on CUDA under "auto"/"bfloat16", nothing otherwise."""
    use_bf16 = precision == "bfloat16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
