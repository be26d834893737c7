"""Export a SinkLM with the default options to a Hugging Face `LlamaForCausalLM` folder."""

from __future__ import annotations

from pathlib import Path

import torch

from sinklab.model.transformer import FUSED_PARAMETERS, SinkLM


def to_llama_config(model: SinkLM):  # -> transformers.LlamaConfig
    from transformers import LlamaConfig

    cfg = model.config
    if not cfg.is_llama():
        raise ValueError(
            "only a model with the default options exports to LlamaForCausalLM (kernel softmax, mask causal, "
            "position rope, mlp swiglu, norm rmsnorm, norm_position pre, kv_bias none, no gate, heads concat)"
        )
    return LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.ffn_dim,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.kv_heads,
        head_dim=cfg.head_dim,
        max_position_embeddings=cfg.context,
        rms_norm_eps=cfg.norm_eps,
        rope_theta=cfg.rope_base,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_base},
        tie_word_embeddings=cfg.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
        hidden_act="silu",
        torch_dtype="float32",
    )


def llama_state_dict(model: SinkLM) -> dict[str, torch.Tensor]:
    """SinkLM parameter names -> LlamaForCausalLM names (the module names were chosen to match); the fused
    q/k/v and gate/up matrices are written as Llama's separate q_proj, k_proj, v_proj, gate_proj, up_proj."""
    sizes = {
        "self_attn.qkv_proj.weight": model.layers[0].self_attn.qkv_sizes,
        "mlp.gate_up_proj.weight": (model.config.ffn_dim, model.config.ffn_dim),
    }
    out = {}
    for name, tensor in model.state_dict().items():
        key = name if name.startswith("lm_head.") else f"model.{name}"
        fused = next((f for f in FUSED_PARAMETERS if name.endswith("." + f)), None)
        if fused is None:
            out[key] = tensor
            continue
        prefix = key[: len(key) - len(fused)]
        for part, piece in zip(FUSED_PARAMETERS[fused], tensor.split(sizes[fused]), strict=True):
            out[prefix + part] = piece.contiguous()
    return out


def export_llama(model: SinkLM, directory: str | Path):
    """Write a LlamaForCausalLM folder (config.json + model.safetensors) with the model's weights."""
    from transformers import LlamaForCausalLM

    hf_cfg = to_llama_config(model)
    with torch.device("meta"):
        hf = LlamaForCausalLM(hf_cfg)
    hf = hf.to_empty(device="cpu")
    missing, unexpected = hf.load_state_dict(llama_state_dict(model), strict=False)
    missing = [m for m in missing if "rotary_emb" not in m]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping to Llama failed: missing {missing}, unexpected {unexpected}")
    hf.model.rotary_emb.__init__(hf_cfg)  # its inv_freq buffer is not in the state dict
    if hf_cfg.tie_word_embeddings:
        hf.tie_weights()
    Path(directory).mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(directory)
    return hf
