"""`sinklab measure`: the paper's attention-sink metric for any HF causal LM or sinklab model.

`sinklab.measure(...)` is the Python API (sinklab.measure.api.measure). Importing a submodule makes
`sinklab.measure` this package rather than the function, so the package itself is callable too.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from sinklab.measure.api import measure

        return measure(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in ("MeasureResult", "measure_token_ids"):
        from sinklab.measure import api

        return getattr(api, name)
    raise AttributeError(f"module 'sinklab.measure' has no attribute {name!r}")


sys.modules[__name__].__class__ = _CallablePackage
