"""`sinklab ablate`: does the model need its sink? Mask it, zero its value, remove its massive activations,
swap the first token, or slide a window past it, and compare the loss with the unablated model.

`sinklab.ablate(...)` is the Python API (sinklab.ablate.api.ablate). As with `sinklab.measure`, importing a
submodule makes `sinklab.ablate` this package rather than the function, so the package is callable too.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from sinklab.ablate.api import ablate

        return ablate(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in ("AblateResult", "AblationRow"):
        from sinklab.ablate import api

        return getattr(api, name)
    if name == "ABLATIONS":
        from sinklab.ablate.ablations import ABLATIONS

        return ABLATIONS
    raise AttributeError(f"module 'sinklab.ablate' has no attribute {name!r}")


sys.modules[__name__].__class__ = _CallablePackage
