"""Model presets: one function per shape, returning a validated ModelConfig (paper.md §4.2)."""

from __future__ import annotations

from collections.abc import Callable

from sinklab.model.config import ModelConfig
from sinklab.registry import Registry

PRESETS: Registry[Callable[[], ModelConfig]] = Registry("model preset")


# name: (what it is, vocab_size, context, n_layer, n_head, d_model, d_ff), as ModelConfig takes them.
SHAPES = {
    "tiny": ("CPU-demo scale (the vocab is set by the tokenizer)", 4096, 256, 4, 4, 128, 512),
    "small": ("small CPU/GPU scale", 8192, 512, 6, 6, 384, 1024),
    "60m": ("the paper's default `tinyllama_60M`", 50432, 2048, 10, 8, 768, 1536),
    "1b": ("the paper's `tinyllama_1_1b`, no GQA", 50432, 2048, 22, 16, 2048, 5632),
}


def _shape(doc: str, vocab: int, context: int, layers: int, heads: int, d: int, ffn: int) -> Callable:
    def preset() -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab, context=context, n_layer=layers, n_head=heads, d_model=d, d_ff=ffn
        )

    preset.__doc__ = f"{doc}: {layers} layers, {heads} heads, d {d}, FFN {ffn}, context {context}."
    return preset


for _name, _spec in SHAPES.items():
    PRESETS.register(_name)(_shape(*_spec))


def get_preset(name: str) -> ModelConfig:
    """A fresh ModelConfig for preset `name` (ValueError listing the accepted names otherwise)."""
    PRESETS.check(name)
    return PRESETS.get(name)()


def preset_names() -> list[str]:
    """Preset names from smallest to largest, then any added later."""
    return [n for n in SHAPES if n in PRESETS] + [n for n in PRESETS.names() if n not in SHAPES]
