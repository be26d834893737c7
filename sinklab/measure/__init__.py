"""`sinklab measure`: the paper's attention-sink metric for any HF causal LM or sinklab model.

The Python API is `sinklab.measure_model(...)` (sinklab.measure.api.measure); this package is its home.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("MeasureResult", "measure_token_ids", "measure"):
        from sinklab.measure import api

        return getattr(api, name)
    raise AttributeError(f"module 'sinklab.measure' has no attribute {name!r}")
