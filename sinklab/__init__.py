"""sinklab: measure, train and reproduce attention sinks in language models."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Heavy imports (torch, transformers) only when the API is used, so `sinklab --help` stays fast.
    # The functions are named so as not to shadow their packages (sinklab.measure, sinklab.ablate).
    if name in ("measure_model", "MeasureResult"):
        from sinklab.measure import api

        return getattr(api, "measure" if name == "measure_model" else name)
    if name in ("ablate_model", "AblateResult"):
        from sinklab.ablate import api as ablate_api

        return getattr(ablate_api, "ablate" if name == "ablate_model" else name)
    raise AttributeError(f"module 'sinklab' has no attribute {name!r}")
