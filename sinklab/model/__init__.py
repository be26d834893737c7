"""sinklab's own decoder: one LLaMA-style model whose variants are registered functions."""

from sinklab.model.config import AttentionConfig, ModelConfig
from sinklab.model.transformer import SinkLM

__all__ = ["AttentionConfig", "ModelConfig", "SinkLM"]
from sinklab.model.io import is_sinklab_model_dir, load_pretrained, save_pretrained
from sinklab.model.presets import get_preset, preset_names

__all__ += ["get_preset", "is_sinklab_model_dir", "load_pretrained", "preset_names", "save_pretrained"]
