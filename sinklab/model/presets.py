"""Model presets: one function per shape, returning a validated ModelConfig (paper.md §4.2)."""

from __future__ import annotations

from collections.abc import Callable

from sinklab.model.config import ModelConfig
from sinklab.registry import Registry

PRESETS: Registry[Callable[[], ModelConfig]] = Registry("model preset")


@PRESETS.register("tiny")
def tiny() -> ModelConfig:
    """CPU-demo scale: 4 layers, 4 heads, d 128, FFN 512, context 256 (the vocab is set by the tokenizer)."""
    return ModelConfig(vocab_size=4096, context=256, n_layer=4, n_head=4, d_model=128, d_ff=512)


@PRESETS.register("small")
def small() -> ModelConfig:
    """Small CPU/GPU scale: 6 layers, 6 heads, d 384, FFN 1024, context 512."""
    return ModelConfig(vocab_size=8192, context=512, n_layer=6, n_head=6, d_model=384, d_ff=1024)


@PRESETS.register("60m")
def m60() -> ModelConfig:
    """The paper's default `tinyllama_60M`: 10 layers, 8 heads, d 768, FFN 1536, context 2048, vocab 50432."""
    return ModelConfig(vocab_size=50432, context=2048, n_layer=10, n_head=8, d_model=768, d_ff=1536)


@PRESETS.register("1b")
def b1() -> ModelConfig:
    """The paper's `tinyllama_1_1b`: 22 layers, 16 heads, d 2048, FFN 5632, context 2048, no GQA."""
    return ModelConfig(vocab_size=50432, context=2048, n_layer=22, n_head=16, d_model=2048, d_ff=5632)


def get_preset(name: str) -> ModelConfig:
    """A fresh ModelConfig for preset `name` (ValueError listing the accepted names otherwise)."""
    PRESETS.check(name)
    return PRESETS.get(name)()


def preset_names() -> list[str]:
    """Preset names from smallest to largest, then any added later."""
    order = ["tiny", "small", "60m", "1b"]
    return [n for n in order if n in PRESETS] + [n for n in PRESETS.names() if n not in order]
