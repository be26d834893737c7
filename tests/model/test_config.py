"""Config validation: names checked against registries, impossible combinations explained, presets build."""

from __future__ import annotations

import pytest
import torch

from sinklab.config import apply_overrides, from_dict, to_dict
from sinklab.listing import listing_text
from sinklab.model import ModelConfig, SinkLM, get_preset, preset_names
from sinklab.model.kernels import KERNELS

from .helpers import tiny_config

BAD = [
    ({"attention": {"kernel": "cosine"}}, "accepted: elu, linear_elu"),
    ({"attention": {"mask": "banded"}}, "accepted: causal, prefix, window"),
    ({"position": "xpos"}, "accepted: alibi, learned, nope"),
    ({"mlp": "moe"}, "accepted: geglu, gelu"),
    ({"norm": "batchnorm"}, "accepted: layernorm, rmsnorm"),
    ({"norm_position": "sandwich"}, "accepted: pre, post"),
    ({"attention": {"kernel": "softmax", "normalize": False}}, "impossible with kernel 'softmax'"),
    ({"attention": {"window": 8}}, "applies to masks: window"),
    ({"attention": {"mask": "window"}}, "needs attention.window >= 1"),
    ({"attention": {"mask": "prefix", "prefix": 0}}, "needs attention.prefix >= 1"),
    ({"attention": {"alpha": 2.0}}, "applies to: softmax_scaled"),
    ({"attention": {"sigmoid_bias": -1.0}}, "applies to: sigmoid"),
    ({"attention": {"kernel": "relu", "backend": "sdpa"}}, "SDPA kernels: sink_logit, softmax"),
    ({"attention": {"heads": "mean"}}, "accepted: concat, addition"),
    ({"n_head": 3}, "divisible by model.n_head"),
    ({"n_kv_head": 3}, "must divide model.n_head"),
    ({"kv_bias_per_head": False}, "applies to: k, kv, v"),
    ({"rope_base": float("inf")}, "model.rope_base must be a finite number"),
    ({"norm_eps": float("nan")}, "model.norm_eps must be a finite number"),
    ({"kv_bias": "k", "kv_bias_value": float("inf")}, "model.kv_bias_value must be a finite number or null"),
    ({"attention": {"kernel": "sigmoid", "sigmoid_bias": float("nan")}}, "sigmoid_bias must be a finite"),
    (
        {"attention": {"kernel": "softmax_scaled", "alpha": 0.0}},
        "attention.alpha (the rows' sum",
    ),
    ({"attention": {"block_size": True}}, "model.attention.block_size must be an integer"),
    ({"n_layer": 2.5}, "model.n_layer must be an integer, got 2.5"),
    ({"position": 3}, "model.position must be a string"),
    ({"rope_base": -1.0}, "model.rope_base must be > 0"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_configs_say_what_is_accepted(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        tiny_config(**change)


def test_unknown_key_is_an_error_listing_keys():
    with pytest.raises(ValueError, match=r"accepted under 'model.attention.'.*kernel"):
        from_dict(ModelConfig, {"attention": {"kernal": "softmax"}}, where="model.")


def test_a_section_that_is_not_a_mapping_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"config section 'model.attention' must be a mapping.*kernel"):
        from_dict(ModelConfig, {"attention": "sigmoid"}, where="model.")
    with pytest.raises(ValueError, match=r"config section 'model.attention' must be a mapping"):
        ModelConfig(attention=5)


def test_script_keys_exist_and_round_trip():
    cfg = apply_overrides(
        tiny_config(),
        [
            "n_layer=3",
            "n_head=2",
            "d_model=16",
            "attention.kernel=sigmoid",
            "attention.normalize=false",
            "attention.mask=window",
            "attention.window=5",
            "position=alibi",
            "mlp=gelu",
            "norm=layernorm",
            "norm_position=post",
            "kv_bias=kv",
        ],
    )
    assert cfg.attention.kernel == "sigmoid" and cfg.attention.resolved_normalize is False
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg
    cfg = apply_overrides(tiny_config(), ["attention.mask=prefix", "attention.prefix=4"])
    assert cfg.attention.prefix == 4


def test_normalize_defaults_follow_the_kernel():
    assert tiny_config(attention={"kernel": "sigmoid"}).attention.resolved_normalize is False
    assert tiny_config(attention={"kernel": "linear_elu"}).attention.resolved_normalize is True
    assert all(KERNELS.get(k).normalize_default in KERNELS.get(k).normalize_options for k in KERNELS.names())


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_builds(name):
    cfg = get_preset(name)
    with torch.device("meta"):
        model = SinkLM(cfg)
    assert len(model.layers) == cfg.n_layer


def test_paper_presets_have_the_papers_shapes():
    m60, b1 = get_preset("60m"), get_preset("1b")
    assert (m60.n_layer, m60.n_head, m60.d_model, m60.ffn_dim, m60.context, m60.vocab_size) == (
        10,
        8,
        768,
        1536,
        2048,
        50432,
    )
    with torch.device("meta"):
        assert SinkLM(m60).num_parameters(non_embedding=True) == pytest.approx(59.0e6, rel=0.01)
        assert SinkLM(b1).num_parameters(non_embedding=True) == pytest.approx(1.130e9, rel=0.01)
    assert b1.kv_heads == b1.n_head == 16
    tiny = get_preset("tiny")
    assert (tiny.n_layer, tiny.n_head, tiny.d_model) == (4, 4, 128)
    with pytest.raises(ValueError, match="accepted: 1b, 60m, small, tiny"):
        get_preset("huge")


def test_listing_names_every_registry_entry():
    text = listing_text()
    for name in [*KERNELS.names(), "window", "relative_bucket", "sink_token", "reglu", "layernorm", "60m"]:
        assert name in text


def test_llama_width_is_eight_thirds_rounded_up_and_the_published_presets_keep_four_d():
    from sinklab.model.config import llama_ffn_dim
    from sinklab.train.presets import get_run_preset

    assert llama_ffn_dim(128) == 384 and llama_ffn_dim(768) == 2048
    assert llama_ffn_dim(4096, multiple_of=256) == 11008  # LLaMA-7B's width
    # tiny / nobos / demo results were trained with d_ff 512: the presets must not drift to another width.
    for name in ("tiny", "tiny-bos", "nobos", "demo"):
        assert get_run_preset(name).model.ffn_dim == 512, name
