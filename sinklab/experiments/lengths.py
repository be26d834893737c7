"""Sink_1 against the evaluation length T and the threshold ε (the paper's Fig. 3) for a finished run.

Each length T measures the run's final model on the first T tokens of its own evaluation set (the same
sequences as every Sink_k of the run; at the full evaluation length and ε = 0.3 this is the run's final
Sink_1). Under a causal mask the first T tokens attend exactly as they do inside the longer sequence, so
the lengths differ only in how many queries α₁ averages over, which is what the paper's figure varies. The
result is cached in the run directory (written atomically), so that a report measures each run once; the
cache names the model files it measured (size and modification time), so a run trained again in place is
measured again.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

# A CPU scale evaluates at 64 tokens. No shorter than 16: alpha_1 >= 1/T by construction (A_11 = 1), and at
# T = 8 that bound alone (0.125) is close to the smallest epsilon, so a fall from T = 8 would be partly the
# metric's own bound rather than the model.
LENGTHS = (16, 32, 64)
EPS_GRID = (0.2, 0.3, 0.4, 0.5)  # the paper's ε in Fig. 3
CACHE_FILE = "sink_by_length.json"


def sink_by_length(
    run_dir: str | Path, lengths: tuple[int, ...] = LENGTHS, eps: tuple[float, ...] = EPS_GRID
) -> dict[str, Any] | None:
    """{"lengths": [T...], "eps": [ε...], "sink_1": {"0.3": [Sink_1 at each T], ...}} for a finished run,
    or None when it has no final model or evaluation set (an unfinished run, hand-made results)."""
    run_dir = Path(run_dir)
    model_dir, eval_path, cache = run_dir / "model", run_dir / "eval_set.jsonl", run_dir / CACHE_FILE
    if not (model_dir.is_dir() and eval_path.exists() and (run_dir / "metrics.json").exists()):
        return None
    wanted = {"lengths": list(lengths), "eps": list(eps), "model": _model_stamp(model_dir)}
    if cache.exists():
        try:
            cached = json.loads(cache.read_text())
            if cached.get("requested") == wanted:
                return cached
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            pass  # an unreadable cache is measured again
    result = _measure(model_dir, eval_path, lengths, eps)
    result["requested"] = wanted
    from sinklab.io import atomic_write_json

    atomic_write_json(cache, result)
    return result


def _model_stamp(model_dir: Path) -> dict[str, list[int]]:
    """Size and modification time of each file of the final model: what the cached numbers measured."""
    files = sorted(f for f in model_dir.iterdir() if f.is_file())
    return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}


def _measure(
    model_dir: Path, eval_path: Path, lengths: tuple[int, ...], eps: tuple[float, ...]
) -> dict[str, Any]:
    import torch

    from sinklab.data.evalset import read_eval_set
    from sinklab.measure.metrics import sink_percent
    from sinklab.model.io import load_pretrained
    from sinklab.train.evaluate import record_sink

    ids = torch.as_tensor(read_eval_set(eval_path).astype("int64"))
    usable = [t for t in lengths if 2 <= t <= ids.shape[1]]
    model = load_pretrained(model_dir).eval()
    by_eps: dict[str, list[float]] = {f"{e:g}": [] for e in eps}
    for t in usable:
        alpha = record_sink(model, ids[:, :t], 16, contextlib.nullcontext).alpha
        for e in eps:
            by_eps[f"{e:g}"].append(float(sink_percent(alpha, e)[0]))
    return {"lengths": usable, "eps": list(eps), "sink_1": by_eps}
