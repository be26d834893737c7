"""Python API of `sinklab measure`.

    import sinklab
    result = sinklab.measure_model("path/or/hub-id", "text:docs.txt", length=64, samples=100, eps=(0.3, 0.5))
    result.sink_percent[0]          # Sink_1 in percent at the first eps

`measure_token_ids(model, ids, ...)` is the lower-level entry: a SinkLM, an HF causal LM or a runner, on
given token ids. Loading is `sinklab.measure.load`, the opening shared with `ablate` is
`sinklab.measure.opening`, the loop that feeds the observers is `sinklab.observe.observe`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sinklab.measure.analysis import as_metrics_json, metrics_document
from sinklab.measure.caller import check_keywords, preserved, python_names, token_ids
from sinklab.measure.checks import into_out
from sinklab.measure.config import MeasureConfig, make_config
from sinklab.measure.inputs import check_spec, source_label
from sinklab.measure.load import as_runner, attention_labels
from sinklab.measure.metrics import DEFAULT_EPS
from sinklab.measure.observers import MAP_SAMPLES, HeadMapRecord
from sinklab.measure.opening import Opened, open_measurement
from sinklab.measure.outputs import write_outputs
from sinklab.measure.record import AttentionRecord
from sinklab.measure.sweep import LengthSweep
from sinklab.measure.windows import layer_windows, window_fields
from sinklab.observe import BACKEND_EAGER, BACKEND_SINKLAB, QUERY_BLOCK, Observers, observe


class EpsDict(dict):
    """{ε (float): values}: keyed by the float ε; the JSON's string form ("0.3") is accepted too."""

    @staticmethod
    def _key(key: Any) -> Any:
        try:
            return float(key)
        except (TypeError, ValueError):
            return key

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(self._key(key))

    def __contains__(self, key: Any) -> bool:
        return super().__contains__(self._key(key))

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(self._key(key), default)

    def json(self) -> dict[str, Any]:
        """The metrics.json form: the keys as strings ("0.3")."""
        return {f"{float(k):g}": v for k, v in self.items()}


def _array(value: Any) -> Any:
    """A rectangular numeric list (JSON's null as NaN) as a float array; anything else as it is."""
    if isinstance(value, list) and value and not isinstance(value[0], (dict, str)):
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            return value
        return array if array.dtype.kind == "f" else value
    return value


def _from_arrays(value: Any) -> Any:
    """The JSON form of a field: EpsDict keys as strings (arrays are left to `jsonable`)."""
    if isinstance(value, EpsDict):
        return {k: _from_arrays(v) for k, v in value.json().items()}
    if isinstance(value, dict):
        return {k: _from_arrays(v) for k, v in value.items()}
    return value


@dataclass(repr=False)
class MeasureResult:
    """Everything `sinklab measure` writes to metrics.json (same keys), plus where it was written.

    In Python the tables are numpy arrays (`alpha` (L, H, T), `sink_percent_by_layer` (L, T), the norm tables
    of `analyses`) and `sink_percent_by_eps` is keyed by the float ε (the string "0.3" works too);
    `to_dict()` gives the metrics.json form. `result` shows a short summary (`_repr_html_` in a notebook),
    `result.plot("alpha" | "sink" | "map" | "norms")` one figure, `result.figures()` all of them,
    `result.to_dataframe("positions" | "layers" | "heads")` a table (pandas, if installed; `table()` gives the
    same columns as numpy arrays without it)."""

    model: str
    samples: int
    length: int
    skipped: int
    epsilon: float
    sink_percent: list[float]
    sink_percent_by_eps: dict[float, list[float]]
    alpha: np.ndarray  # (layer, head, position), mean over samples
    sink_percent_by_layer: np.ndarray  # (layer, position)
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
    # the model's own index of each `alpha` layer, where they are not 0, 1, ... (a hybrid's attention layers)
    attention_layers: list[int] | None = None
    # per-layer sliding / chunked windows and the window-normalised Sink_k (sinklab.measure.windows)
    window: dict[str, Any] | None = None
    # position 1: id, text, how (added / tokenizer / native / given / random), share, distinct
    first_token: dict[str, Any] | None = None
    # --length T1 T2 ...: Sink_k at every length from one forward (sinklab.measure.sweep)
    length_sweep: dict[str, Any] | None = None
    # --positions K: only key positions 1..K were computed (alpha, sink_percent, ... hold K entries)
    positions: int | None = None
    notes: list[str] = field(default_factory=list)
    out: str | None = None
    written: list[str] = field(default_factory=list)  # files written to `out`
    # (P, P) mean map of the strongest head, first MAP_SAMPLES samples, positions 1..P (P = min(T, 64))
    head_map: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.alpha = np.asarray(self.alpha, dtype=float)
        self.sink_percent_by_layer = np.asarray(self.sink_percent_by_layer, dtype=float)
        self.sink_percent_by_eps = EpsDict({float(k): list(v) for k, v in self.sink_percent_by_eps.items()})
        self.analyses = {k: _array(v) for k, v in (self.analyses or {}).items()}
        if self.window:
            self.window = dict(self.window)
            self.window["sink_percent_by_eps"] = EpsDict(
                {float(k): v for k, v in self.window["sink_percent_by_eps"].items()}
            )
            self.window["sink_percent_by_layer"] = np.asarray(self.window["sink_percent_by_layer"])

    def to_dict(self) -> dict[str, Any]:
        skip = ("head_map", "out", "written")
        return as_metrics_json(
            {f.name: _from_arrays(getattr(self, f.name)) for f in fields(self) if f.name not in skip}
        )

    # ---- for a notebook ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        top = ", ".join(f"Sink_{k + 1}={v:.1f}%" for k, v in enumerate(self.sink_percent[:4]))
        text = f"MeasureResult({self.model!r}, T={self.length}, n={self.samples}, ε={self.epsilon:g}: {top}"
        if self.window:
            text += f"; window-normalised Sink_1={self.window['sink_percent'][0]:.1f}%"
        if self.strongest_head:
            sh = self.strongest_head
            text += f"; strongest head L{sh['layer']} H{sh['head']} α₁={sh['alpha_1']:.2f}"
        return text + (f"; out={self.out!r})" if self.out else ")")

    def _repr_html_(self) -> str:
        from sinklab.measure.outputs import summary_html

        return summary_html(self)

    def figures(self) -> dict[str, Any]:
        """Every figure `sinklab measure --out` writes, as matplotlib Figures by file name."""
        from sinklab.measure.outputs import figures

        return figures(self)

    def plot(self, kind: str = "alpha") -> Any:
        """One figure: "alpha" (α₁ by layer and head), "sink" (Sink_k by position), "map" (the strongest
        head's mean map) or "norms"."""
        from sinklab.measure.outputs import FIGURE_KINDS, figures

        if kind not in FIGURE_KINDS:
            from sinklab.measure.caller import did_you_mean

            accepted = ", ".join(FIGURE_KINDS)
            raise ValueError(f"unknown plot {kind!r}{did_you_mean(kind, FIGURE_KINDS)}; accepted: {accepted}")
        name = FIGURE_KINDS[kind]
        made = figures(self, only=name)
        if name not in made:
            raise ValueError(f"no {kind!r} figure: this measurement has no data for it (analyses off?)")
        return made[name]

    def table(self, kind: str = "positions") -> dict[str, np.ndarray]:
        """The columns of `to_dataframe(kind)` as numpy arrays: "positions" (k, Sink_k per ε, and
        window-normalised), "layers" (layer, Sink_1, α₁ mean, window), "heads" (layer, head, α_1..α_4)."""
        L, H, T = self.alpha.shape
        if kind == "positions":
            cols: dict[str, np.ndarray] = {"k": np.arange(1, T + 1)}
            for e, values in self.sink_percent_by_eps.items():
                cols[f"sink_percent_eps_{e:g}"] = np.asarray(values)
            if self.window:
                for e, values in self.window["sink_percent_by_eps"].items():
                    cols[f"sink_percent_window_eps_{e:g}"] = np.asarray(values)
            return cols
        if kind == "layers":
            cols = {
                "layer": np.arange(L),
                f"sink_1_eps_{self.epsilon:g}": self.sink_percent_by_layer[:, 0],
                "mean_alpha_1": self.alpha[:, :, 0].mean(axis=1),
            }
            if self.window:
                cols["window"] = np.array([w if w is not None else 0 for w in self.window["layers"]])
                cols[f"sink_1_window_eps_{self.epsilon:g}"] = self.window["sink_percent_by_layer"][:, 0]
            return cols
        if kind == "heads":
            cols = {"layer": np.repeat(np.arange(L), H), "head": np.tile(np.arange(H), L)}
            for k in range(min(4, T)):
                cols[f"alpha_{k + 1}"] = self.alpha[:, :, k].reshape(-1)
            return cols
        from sinklab.measure.caller import did_you_mean

        kinds = ("positions", "layers", "heads")
        raise ValueError(f"unknown table {kind!r}{did_you_mean(kind, kinds)}; accepted: {', '.join(kinds)}")

    def to_dataframe(self, kind: str = "positions") -> Any:
        """`table(kind)` as a pandas DataFrame (pandas is optional: without it, an ImportError that points
        to `table`)."""
        columns = self.table(kind)
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "to_dataframe needs pandas (pip install pandas); result.table(kind) gives the same columns "
                "as numpy arrays"
            ) from None
        return pd.DataFrame(columns)


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
        record.result(),
        eps,
        model=name,
        length=int(ids.shape[1]),
        skipped=0,
        backend=runner.backend,
        attention_layers=attention_labels(runner),
    )


def measure(
    model: str | nn.Module,
    source: Any = "random",
    config: MeasureConfig | None = None,
    *,
    out: str | Path | None = None,
    analyses: bool = True,
    plots: bool = True,
    **options: Any,
) -> MeasureResult:
    """Measure the paper's sink metric (and the Sec. 3 analyses) of `model` (a hub id, a folder, or a model
    object) on `source`: an input SPEC string ("random", "text:FILE", "ids:FILE.jsonl", "hf:DATASET", ...) or
    token ids (a tensor, array or list; then length= and samples= default to its shape). `config` (a
    MeasureConfig) or its fields as keyword `options`: length=, samples=, eps=, tokenizer= (a folder, hub id
    or tokenizer object), bos=, batch_size=, device=, dtype=, ... Every option, the form of `source` and `out`
    are checked before the model loads; `out` is created then and removed again (if still empty) when the
    measurement fails or is interrupted. A model object comes back exactly as it came (attention
    implementation, device, dtype, training mode, hooks). Errors name these arguments, not the CLI's flags."""
    check_keywords("measure_model", options, [f.name for f in fields(MeasureConfig)])
    with python_names():
        ids = token_ids(source)
        if ids is not None and config is None:
            options = {"length": int(ids.shape[1]), "samples": int(ids.shape[0]), **options}
        return measure_command(
            model, source, make_config(config, options), out=out, analyses=analyses, plots=plots
        )


def measure_command(
    model: str | nn.Module,
    source: Any,
    cfg: MeasureConfig,
    *,
    out: str | Path | None = None,
    analyses: bool = True,
    plots: bool = True,
) -> MeasureResult:
    """`measure` as the command line runs it (errors name the flags)."""
    check_spec(source)
    with into_out(out) as folder, preserved(model):
        result = _measure(
            open_measurement(model, source, cfg, "measure"), source_label(source), cfg, analyses
        )
        if folder is not None:
            result.written = [str(p) for p in write_outputs(result, folder, plots=plots)]
            result.out = str(out)
    return result


def positions_notes(runner: Any, positions: int) -> list[str]:
    """What --positions K could not do the fast way, for the console and metrics.json `notes`."""
    head = f"--positions {positions}"
    if runner.backend == BACKEND_SINKLAB:
        return [
            f"{head}: sinklab's own model has no fused attention kernel that returns the log-sum-exp; "
            "measured in the full mode (every weight recomputed in query blocks; exact, slower)"
        ]
    if runner.backend == BACKEND_EAGER:
        return [f"{head}: the eager fallback reads whole attention maps; measured in the full mode"]
    return [
        f"{head}: the log-sum-exp shortcut does not apply to {why} ({n} attention call(s) over all batches); "
        "they ran the full mode instead (every weight recomputed in query blocks; exact, slower)"
        for why, n in (runner.fast_fallbacks or {}).items()
    ]


def _observe(runner: Any, ids: Any, members: tuple, cfg: MeasureConfig) -> list[str]:
    """Run the measurement's pass (through the log-sum-exp path with --positions); its fallback notes."""
    if cfg.positions is None:
        observe(runner, ids, Observers(members), cfg.batch_size, progress=cfg.progress)
        return []
    runner.positions, runner.fast_fallbacks = cfg.positions, None
    try:
        observe(runner, ids, Observers(members), cfg.batch_size, progress=cfg.progress)
        notes = positions_notes(runner, cfg.positions)
    finally:
        runner.positions, runner.fast_fallbacks = None, None
    for note in notes:
        print(f"sinklab measure: {note}", file=sys.stderr)
    return notes


def _measure(opened: Opened, source: str, cfg: MeasureConfig, analyses: bool) -> MeasureResult:
    runner, ids = opened.runner, opened.ids
    record, maps = AttentionRecord(analyses=analyses, query_block=cfg.query_block), HeadMapRecord()
    members: tuple = (record, maps)
    sweep = None
    if cfg.sweep:
        sweep = LengthSweep(lengths=cfg.sweep, query_block=cfg.query_block)
        members = (*members, sweep)
    fast_notes = _observe(runner, ids, members, cfg)
    result = record.result()
    if cfg.positions is not None:
        result = result.first_positions(cfg.positions)
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
        notes=opened.notes + opened.inputs.notes + fast_notes,
        attention_layers=attention_labels(runner),
        window=window_fields(result.alpha, windows, cfg.eps_list, int(ids.shape[1])),
        first_token=opened.inputs.first_token,
        length_sweep=sweep.fields(cfg.eps_list) if sweep is not None else None,
        positions=cfg.positions,
    )
    document.pop("schema")
    return MeasureResult(**document, head_map=maps.mean_map(layer, head))
