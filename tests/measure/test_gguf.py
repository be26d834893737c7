"""`--gguf-file`: a tiny Llama written as an F32 GGUF file (as llama.cpp's converter writes it) loads through
sinklab's loader into the same model, and measures the same as the Hugging Face folder it came from."""

from __future__ import annotations

import json
from pathlib import Path

# Both are in the test extra: a missing one must fail the suite, not skip the GGUF feature's tests.
import accelerate  # noqa: F401  (transformers needs it to load a GGUF file)
import gguf
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from sinklab.cli import main
from sinklab.measure import hf
from sinklab.measure.api import measure
from sinklab.measure.load import load_model
from sinklab.observe import BACKEND_REGISTRY

NAME = "tiny-f32.gguf"
HEADS, KV_HEADS, HIDDEN, LAYERS, FFN, CONTEXT = 4, 2, 64, 2, 128, 128

# llama.cpp's tensor names (gguf.md "Standardized tensor names") for the HF Llama block parameters.
BLOCK_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def _byte_vocab() -> tuple[list[str], list[int], list[str]]:
    """A tiny gpt2-style byte-level BPE vocabulary: one control token, the 256 byte symbols, 3 merges.

    The control token is GPT-2's "<|endoftext|>" (BOS = EOS): transformers' GGUF byte-level tokenizer
    defaults its unknown token to that name and would add it as an extra id if the vocabulary lacked it."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    merges = [("t", "h"), ("th", "e"), ("Ġ", "the")]
    tokens = ["<|endoftext|>", *bytes_to_unicode().values(), *("".join(m) for m in merges)]
    types = [3] + [1] * (len(tokens) - 1)  # 3 = CONTROL, 1 = NORMAL (llama.cpp token types)
    return tokens, types, [" ".join(m) for m in merges]


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf q/k permutation (rotary halves -> interleaved pairs)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(model: torch.nn.Module, path: Path, permute: bool = True) -> None:
    """Write an HF LlamaForCausalLM as an all-F32 GGUF file with a byte-level BPE tokenizer."""
    cfg = model.config
    tokens, types, merges = _byte_vocab()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(cfg.bos_token_id)
    writer.add_eos_token_id(cfg.eos_token_id)

    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", sd["model.norm.weight"])
    writer.add_tensor("output.weight", sd["lm_head.weight"])  # untied: llama.cpp writes it
    for i in range(cfg.num_hidden_layers):
        for hf_name, gguf_name in BLOCK_NAMES.items():
            w = sd[f"model.layers.{i}.{hf_name}.weight"]
            if permute and gguf_name == "attn_q":
                w = _permute(w, cfg.num_attention_heads)
            elif permute and gguf_name == "attn_k":
                w = _permute(w, cfg.num_key_value_heads)
            writer.add_tensor(f"blk.{i}.{gguf_name}.weight", np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, torch.nn.Module]:
    """(HF folder, folder with only the GGUF file, the original model)."""
    root = tmp_path_factory.mktemp("gguf")
    tokens, _, _ = _byte_vocab()
    cfg = LlamaConfig(
        vocab_size=len(tokens),  # = the tokenizer's size, so random ids span the same range either way
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=CONTEXT,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
    model.save_pretrained(root / "hf")
    (root / "gguf").mkdir()  # no config.json: the config must come from the GGUF metadata
    write_llama_gguf(model, root / "gguf" / NAME)
    return root / "hf", root / "gguf", model


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids, use_cache=False).logits


def test_gguf_loads_the_same_model(folders: tuple[Path, Path, torch.nn.Module]) -> None:
    _, gguf_dir, original = folders
    loaded = load_model(str(gguf_dir), gguf_file=NAME)
    net = loaded.runner.model
    assert loaded.runner.backend == BACKEND_REGISTRY
    cfg = net.config
    shape = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.num_hidden_layers)
    assert shape == (HEADS, KV_HEADS, LAYERS)
    assert not cfg.tie_word_embeddings
    assert next(net.parameters()).dtype == torch.float32

    ids = torch.randint(0, original.config.vocab_size, (2, 20), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(_logits(net, ids), _logits(original, ids), atol=1e-4, rtol=0)

    # The tokenizer comes from the GGUF metadata: same size as the model, BOS from the file, merges used.
    tok = loaded.tokenizer
    assert tok is not None and len(tok) == loaded.vocab_size == original.config.vocab_size
    assert loaded.bos_id == 0
    tokens, _, _ = _byte_vocab()
    assert [tokens[i] for i in tok("the the").input_ids] == ["the", "Ġthe"]


def test_unpermuted_qk_gives_other_logits(
    folders: tuple[Path, Path, torch.nn.Module], tmp_path: Path
) -> None:
    """The check above is sensitive to the q/k layout: a file without llama.cpp's permutation differs."""
    _, _, original = folders
    write_llama_gguf(original, tmp_path / NAME, permute=False)
    net = hf.load_hf_model(str(tmp_path), gguf_file=NAME)
    ids = torch.randint(0, original.config.vocab_size, (2, 20), generator=torch.Generator().manual_seed(3))
    assert (_logits(net, ids) - _logits(original, ids)).abs().max() > 1e-3


def test_gguf_measures_like_hf_folder(folders: tuple[Path, Path, torch.nn.Module]) -> None:
    hf_dir, gguf_dir, _ = folders
    ref = measure(str(hf_dir), "random:0", length=16, samples=4, plots=False)
    got = measure(str(gguf_dir), "random:0", gguf_file=NAME, length=16, samples=4, plots=False)
    assert got.backend == ref.backend == BACKEND_REGISTRY
    np.testing.assert_allclose(np.array(got.alpha), np.array(ref.alpha), atol=1e-5)
    assert got.sink_percent == ref.sink_percent
    assert got.strongest_head is not None and ref.strongest_head is not None
    assert (got.strongest_head["layer"], got.strongest_head["head"]) == (
        ref.strongest_head["layer"],
        ref.strongest_head["head"],
    )


def test_cli_gguf(folders: tuple[Path, Path, torch.nn.Module], tmp_path: Path) -> None:
    _, gguf_dir, _ = folders
    out = tmp_path / "out"
    args = ["measure", "--model", str(gguf_dir), "--gguf-file", NAME, "--input", "random:0"]
    rc = main([*args, "--length", "16", "--samples", "4", "--no-plots", "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["alpha"]) == LAYERS and len(metrics["alpha"][0]) == HEADS


def test_missing_gguf_file_is_named(
    folders: tuple[Path, Path, torch.nn.Module], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, gguf_dir, _ = folders
    with pytest.raises(FileNotFoundError, match=r"'nope\.gguf' not found .*GGUF files there: tiny-f32\.gguf"):
        measure(str(gguf_dir), "random:0", gguf_file="nope.gguf", length=16, samples=4, plots=False)
    rc = main(["measure", "--model", str(gguf_dir), "--gguf-file", "nope.gguf", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "nope.gguf" in capsys.readouterr().err
