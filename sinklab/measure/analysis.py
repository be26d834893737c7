"""The paper's Sec. 3 analyses and the metrics.json fields, from what an AttentionRecord kept.

- Hidden-state norms ||h_t^l|| by layer and position, and the massive-activation ratio of the first
  token's norm to the mean norm of the other positions (per layer; the paper's ratio), and to their median
  (robust to a second massive token).
- Key / value / query norms by layer and position (keys after positional encoding), with the same
  first-to-median ratio (the paper finds ||k_1|| and ||v_1|| small).
- Cosine between the first token's key and the queries of other positions, against the mean cosine of
  other visible key/query pairs (the paper: the angle, not the norm product, drives the sink).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sinklab.measure.massive import DEFAULT_MASSIVE_THRESHOLD, find_massive
from sinklab.measure.metrics import summarize_alpha
from sinklab.measure.record import RecordResult


def first_to_mean(table: np.ndarray) -> np.ndarray:
    """(rows, T) -> per row: value at position 1 / mean over positions 2..T (the paper's ratio)."""
    if table.shape[1] < 2:
        return np.full(table.shape[0], np.nan)
    return table[:, 0] / table[:, 1:].mean(axis=1)


def first_to_median(table: np.ndarray) -> np.ndarray:
    """(rows, T) -> per row: value at position 1 / median over positions 2..T."""
    if table.shape[1] < 2:
        return np.full(table.shape[0], np.nan)
    return table[:, 0] / np.median(table[:, 1:], axis=1)


def jsonable(value: Any) -> Any:
    """numpy arrays and floats as JSON values; NaN/inf become null (strict JSON)."""
    if isinstance(value, (list, tuple)) and value and not isinstance(value[0], (dict, str)):
        try:
            array = np.asarray(value)
        except ValueError:  # ragged
            array = None
        if array is not None and array.dtype.kind in "iubf":
            value = array  # a rectangular numeric table: converted whole below
    if isinstance(value, np.ndarray):
        # Whole arrays at once where nothing needs replacing: a per-element walk of a (L, H, T) table costs
        # seconds at T = 1024.
        if value.dtype.kind in "iub" or (value.dtype.kind == "f" and bool(np.isfinite(value).all())):
            return value.tolist()
        return [jsonable(v) for v in value.tolist()] if value.ndim else jsonable(value.item())
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if np.isfinite(f) else None
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def analyses(result: RecordResult) -> dict[str, Any]:
    """The analyses block of metrics.json (only the parts the backend could record)."""
    out: dict[str, Any] = {}
    if result.hidden_norm is not None:
        out["hidden_norm"] = result.hidden_norm
        out["massive_activation_ratio"] = first_to_mean(result.hidden_norm)  # the paper's: mean
        out["massive_activation_ratio_median"] = first_to_median(result.hidden_norm)
    if result.massive is not None:  # the first token's dims, by the finder `ablate` uses too
        out["massive"] = find_massive(result.massive, DEFAULT_MASSIVE_THRESHOLD).to_dict()
    for name in ("key_norm", "value_norm", "query_norm"):
        table = getattr(result, name)
        if table is not None:
            out[name] = table
            out[f"{name}_first_ratio"] = first_to_median(table)
    if result.cos_first_key is not None and result.cos_other_keys is not None:
        out["cos_first_key"] = result.cos_first_key
        out["cos_other_keys"] = result.cos_other_keys
        # Per layer, mean over query positions 2..T.
        out["cos_first_key_mean"] = np.nanmean(result.cos_first_key[:, 1:], axis=1)
        out["cos_other_keys_mean"] = np.nanmean(result.cos_other_keys[:, 1:], axis=1)
    return out


def build_metrics(result: RecordResult, eps: Sequence[float]) -> dict[str, Any]:
    """metrics.json fields (without the run description: model, length, skipped, backend)."""
    metrics: dict[str, Any] = dict(summarize_alpha(result.alpha, eps))
    metrics["samples"] = int(result.samples)
    if result.alpha_raw is not None:
        raw = summarize_alpha(result.alpha_raw, eps)
        metrics["raw"] = {
            k: raw[k] for k in ("sink_percent", "sink_percent_by_eps", "alpha", "mean_first_alpha")
        }
    if result.slot_alpha is not None:
        # The sink slot / sink logit as the paper's virtual position 0 (Sink_1*), per layer and head.
        slot = result.slot_alpha
        metrics["slot"] = {
            "alpha": slot.mean(axis=0),
            "sink_percent_by_eps": {f"{float(e):g}": float((slot > e).mean() * 100.0) for e in eps},
            "mean_alpha": float(slot.mean()),
        }
    metrics["analyses"] = analyses(result)
    return metrics


# ---- metrics.json: one writer, one reader -------------------------------------------------------------
NORM_TABLES = ("hidden_norm", "key_norm", "value_norm", "query_norm", "cos_first_key", "cos_other_keys")
SCHEMA = 1  # metrics.json format version (docs/metrics.md); bump on an incompatible change
# Sections only some models have: absent where a model has none, never null (docs/metrics.md).
OPTIONAL_SECTIONS = (
    "raw",
    "slot",
    "sink_percent_window",
    "attention_layers",
    "window",
    "first_token",
    "length_sweep",
    "positions",
)


def as_metrics_json(fields: dict[str, Any]) -> dict[str, Any]:
    """The one form of a metrics.json document, whoever wrote the fields: the schema first, optional
    sections left out where there are none, JSON values only."""
    kept = {k: v for k, v in fields.items() if k != "schema" and not (k in OPTIONAL_SECTIONS and v is None)}
    return jsonable({"schema": SCHEMA, **kept})


def metrics_document(
    result: RecordResult,
    eps: Sequence[float],
    *,
    model: str,
    length: int,
    skipped: int,
    backend: str,
    **extra: Any,
) -> dict[str, Any]:
    """The whole metrics.json of a measurement, whoever measured (`sinklab measure`, training's final
    evaluation, `measure_token_ids`): the run description, the metric, and `extra` fields (measure's own,
    training's sink_percent_window)."""
    document = {
        "model": model,
        "length": int(length),
        "skipped": int(skipped),
        "backend": backend,
        "epsilon": float(eps[0]),
        **build_metrics(result, eps),
        **extra,
    }
    return as_metrics_json(document)


def read_metrics(path: Any) -> dict[str, Any]:
    """Read a metrics.json written by any sinklab command (older training files are brought to schema 1:
    norms under `analyses`, the slot under `slot`). Unreadable or foreign files are a clear error."""
    import json
    from pathlib import Path

    from sinklab.errors import SinklabError

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SinklabError(f"{path}: not a readable metrics.json ({err})") from None
    if not isinstance(data, dict) or "sink_percent" not in data:
        raise SinklabError(f"{path}: not a sinklab metrics.json (no sink_percent)")
    schema = data.get("schema", 0)
    if not isinstance(schema, int) or schema > SCHEMA:
        raise SinklabError(f"{path}: metrics schema {schema!r} is newer than this sinklab reads ({SCHEMA})")
    if schema == 0:  # training runs before schema 1 kept norms at the top level and the slot flat
        analyses_ = dict(data.get("analyses") or {})
        for name in NORM_TABLES:
            if name in data:
                analyses_[name] = data.pop(name)
        data["analyses"] = analyses_
        if "slot_sink_percent" in data and not data.get("slot"):
            eps = f"{float(data.get('epsilon', 0.3)):g}"
            data["slot"] = {
                "alpha": data.pop("slot_alpha", None),
                "sink_percent_by_eps": {eps: data.pop("slot_sink_percent")},
            }
        data["schema"] = SCHEMA
    return data
