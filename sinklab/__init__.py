"""sinklab: measure, train and reproduce attention sinks in language models."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Heavy imports (torch, transformers) only when the API is used, so `sinklab --help` stays fast.
    if name in ("measure", "MeasureResult"):
        from sinklab.measure import api

        return getattr(api, name)
    if name in ("ablate", "AblateResult"):
        from sinklab.ablate import api as ablate_api

        return getattr(ablate_api, name)
    raise AttributeError(f"module 'sinklab' has no attribute {name!r}")
