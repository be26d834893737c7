"""`sinklab ablate`: does the model need its sink? Mask it, zero its value, remove its massive activations,
swap the first token, or slide a window past it, and compare the loss with the unablated model.

The Python API is `sinklab.ablate_model(...)` (sinklab.ablate.api.ablate); this package is its home.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("AblateResult", "AblationRow"):
        from sinklab.ablate import api

        return getattr(api, name)
    if name == "ABLATIONS":
        from sinklab.ablate.ablations import ABLATIONS

        return ABLATIONS
    raise AttributeError(f"module 'sinklab.ablate' has no attribute {name!r}")
