"""Python API of `sinklab measure`.

    import sinklab
    result = sinklab.measure_model("path/or/hub-id", "text:docs.txt", length=64, samples=100, eps=(0.3, 0.5))
    result.sink_percent[0]          # Sink_1 in percent at the first eps

`measure_token_ids(model, ids, ...)` is the lower-level entry: a SinkLM, an HF causal LM or a runner, on
given token ids. Loading is `sinklab.measure.load`, the opening shared with `ablate` is
`sinklab.measure.opening`, the loop that feeds the observers is `sinklab.observe.observe`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sinklab.measure.analysis import as_metrics_json, metrics_document
from sinklab.measure.checks import into_out
from sinklab.measure.config import MeasureConfig, make_config
from sinklab.measure.inputs import check_spec
from sinklab.measure.load import as_runner
from sinklab.measure.metrics import DEFAULT_EPS
from sinklab.measure.observers import MAP_SAMPLES, HeadMapRecord
from sinklab.measure.opening import Opened, open_measurement
from sinklab.measure.outputs import write_outputs
from sinklab.measure.record import AttentionRecord
from sinklab.measure.windows import layer_windows, window_fields
from sinklab.observe import QUERY_BLOCK, Observers, observe


@dataclass
class MeasureResult:
    """Everything `sinklab measure` writes to metrics.json (same keys), plus where it was written."""

    model: str
    samples: int
    length: int
    skipped: int
    epsilon: float
    sink_percent: list[float]
    sink_percent_by_eps: dict[str, list[float]]
    alpha: list[list[list[float]]]  # [layer][head][position], mean over samples
    sink_percent_by_layer: list[list[float]]  # [layer][position]
    mean_first_alpha: float
    analyses: dict[str, Any]
    backend: str
    input: str = ""
    bos: str = "auto"
    dtype: str = "float32"
    device: str = "cpu"
    requested_samples: int = 0
    strongest_head: dict[str, Any] | None = None  # layer, head, alpha_1 (0-based layer/head)
    raw: dict[str, Any] | None = None  # metric on raw weights, for kernels whose rows need not sum to 1
    slot: dict[str, Any] | None = None  # mass of a sink slot / sink logit (gpt-oss `sinks`)
    # per-layer sliding / chunked windows and the window-normalised Sink_k (sinklab.measure.windows)
    window: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    out: str | None = None
    written: list[str] = field(default_factory=list)  # files written to `out`
    # (P, P) mean map of the strongest head, first MAP_SAMPLES samples, positions 1..P (P = min(T, 64))
    head_map: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        skip = ("head_map", "out", "written")
        return as_metrics_json({f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip})


def measure_token_ids(
    model: Any,
    ids: torch.Tensor,
    eps: Sequence[float] = (DEFAULT_EPS,),
    batch_size: int = 8,
    *,
    analyses: bool = True,
    query_block: int = QUERY_BLOCK,
    progress: bool = False,
) -> dict[str, Any]:
    """metrics.json of `model` (a SinkLM, an HF causal LM or a runner) on ids (S, T), as a dict.
    Training mode is restored afterwards, so this can run inside a training loop."""
    was_training = bool(getattr(model, "model", model).training)
    runner = as_runner(model, query_block=query_block)
    runner.model.eval()
    try:
        record = AttentionRecord(analyses=analyses, query_block=query_block)
        observe(runner, ids, record, batch_size, progress=progress)
    finally:
        runner.model.train(was_training)
    name = runner.name or type(runner.model).__name__
    return metrics_document(
        record.result(), eps, model=name, length=int(ids.shape[1]), skipped=0, backend=runner.backend
    )


def measure(
    model: str | nn.Module,
    source: str = "random",
    config: MeasureConfig | None = None,
    *,
    out: str | Path | None = None,
    analyses: bool = True,
    plots: bool = True,
    **options: Any,
) -> MeasureResult:
    """Measure the paper's sink metric (and the Sec. 3 analyses) of `model` on `source` (an --input SPEC);
    see the CLI. `config` (a MeasureConfig) or its fields as keyword `options` (length=, samples=, eps=,
    ...): every option, the form of `source` and `out` are checked before the model loads; `out` is created
    then and removed again (if still empty) when the measurement fails or is interrupted."""
    cfg = make_config(config, options)
    check_spec(source)
    with into_out(out) as folder:
        result = _measure(open_measurement(model, source, cfg, "measure"), source, cfg, analyses)
        if folder is not None:
            result.written = [str(p) for p in write_outputs(result, folder, plots=plots)]
            result.out = str(out)
    return result


def _measure(opened: Opened, source: str, cfg: MeasureConfig, analyses: bool) -> MeasureResult:
    runner, ids = opened.runner, opened.ids
    record, maps = AttentionRecord(analyses=analyses, query_block=cfg.query_block), HeadMapRecord()
    observe(runner, ids, Observers((record, maps)), cfg.batch_size, progress=cfg.progress)
    result = record.result()
    alpha_first = result.alpha[..., 0].mean(axis=0)  # (L, H)
    layer, head = (int(i) for i in np.unravel_index(int(np.argmax(alpha_first)), alpha_first.shape))
    dtype, device = opened.dtype_device
    windows = layer_windows(getattr(runner.model, "config", None), result.alpha.shape[1])
    document = metrics_document(
        result,
        cfg.eps_list,
        model=opened.name,
        length=int(ids.shape[1]),
        skipped=opened.inputs.skipped,
        backend=runner.backend,
        input=source,
        bos=cfg.bos,
        dtype=dtype,
        device=device,
        requested_samples=opened.inputs.requested,
        strongest_head={
            "layer": layer,
            "head": head,
            "alpha_1": float(alpha_first[layer, head]),
            "map_samples": int(min(MAP_SAMPLES, ids.shape[0])),
        },
        notes=opened.notes + opened.inputs.notes,
        window=window_fields(result.alpha, windows, cfg.eps_list),
    )
    document.pop("schema")
    return MeasureResult(**document, head_map=maps.mean_map(layer, head))
