from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama (4 heads, 2 key/value heads) + byte-level tokenizer folder, built locally."""
    from sinklab.measure.make_tiny import make_tiny

    return make_tiny("llama", tmp_path_factory.mktemp("tiny_llama"), seed=0)
