"""Create a tiny random Hugging Face causal LM and a byte-level tokenizer locally (no download).

    python -m sinklab.measure.make_tiny llama DIR [--seed 0] [--layers 2] [--hidden 64] [--heads 4]

The folder loads with `AutoModelForCausalLM.from_pretrained(DIR)` and `AutoTokenizer.from_pretrained(DIR)`,
so `sinklab measure --model DIR` works on it offline. Used by the README's first command, the tests and
the benchmark.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# model_type -> extra config keys beyond the shared size keys (small values that keep every feature on:
# Mistral's and Gemma2/3's sliding windows shorter than test lengths, Gemma2 softcapping, gpt-oss sinks).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "llama": {},
    "mistral": {"sliding_window": 8},
    "qwen2": {},
    "qwen3": {"head_dim": 16},
    "gemma": {"head_dim": 16},
    "gemma2": {
        "head_dim": 16,
        "sliding_window": 8,
        "attn_logit_softcapping": 5.0,
        "final_logit_softcapping": 30.0,
    },
    "gemma3_text": {"head_dim": 16, "sliding_window": 8, "sliding_window_pattern": 2},
    "gpt2": {},
    "gpt_neox": {},
    "opt": {},
    "phi": {},
    "phi3": {},
    "falcon": {},
    "olmo2": {},
    "gpt_oss": {"head_dim": 16, "sliding_window": 8, "num_local_experts": 2, "num_experts_per_tok": 1},
}
ALIASES = {"gemma3": "gemma3_text", "pythia": "gpt_neox", "neox": "gpt_neox", "gptoss": "gpt_oss"}
VOCAB_SIZE = 320  # 256 bytes + a few specials + merges


def tiny_config(
    model_type: str,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    vocab_size: int = VOCAB_SIZE,
    max_positions: int = 4096,
) -> Any:
    """A small `PretrainedConfig` of the given model type (causal, eager-compatible, random init)."""
    from transformers import CONFIG_MAPPING

    model_type = ALIASES.get(model_type, model_type)
    if model_type not in ARCHITECTURES:
        raise ValueError(f"unknown model type {model_type!r}; accepted: {', '.join(ARCHITECTURES)}")
    kwargs: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": 2 * hidden,
        "max_position_embeddings": max_positions,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        **ARCHITECTURES[model_type],
    }
    if model_type in (
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "gemma3_text",
        "phi3",
        "olmo2",
        "gpt_oss",
    ):
        kwargs["num_key_value_heads"] = kv_heads  # GQA on where the architecture has it
    if model_type == "gpt2":
        kwargs = {
            "vocab_size": vocab_size,
            "n_embd": hidden,
            "n_layer": layers,
            "n_head": heads,
            "n_positions": max_positions,
            "bos_token_id": 1,
            "eos_token_id": 2,
        }
    if model_type == "opt":
        kwargs.update(ffn_dim=2 * hidden, word_embed_proj_dim=hidden)
        kwargs.pop("intermediate_size")
    if model_type == "falcon":
        kwargs.pop("intermediate_size")
        kwargs.update(new_decoder_architecture=False, multi_query=True, alibi=False)
    if model_type in ("qwen2", "qwen3"):
        kwargs["use_sliding_window"] = False
    return CONFIG_MAPPING[model_type](**kwargs)


def byte_tokenizer(bos: bool = True) -> Any:
    """A byte-level BPE tokenizer built locally with `tokenizers` (a few merges from a fixed text)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - 8,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    text = "the quick brown fox jumps over the lazy dog. attention sinks appear in language models. " * 20
    tok.train_from_iterator([text], trainer=trainer)
    if bos:
        # Like Llama: "<s>" in front of every encoded text by default.
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def make_tiny(model_type: str, out: str | Path, seed: int = 0, **sizes: int) -> Path:
    """Write a tiny random model of `model_type` and a byte-level tokenizer into `out`; return the path."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(model_type, **sizes)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer = byte_tokenizer()
    if len(tokenizer) > cfg.vocab_size:
        raise RuntimeError(f"tokenizer has {len(tokenizer)} ids but the model only {cfg.vocab_size}")
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sinklab.measure.make_tiny",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_type", help=f"one of: {', '.join(ARCHITECTURES)}")
    parser.add_argument("out", help="folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    args = parser.parse_args(argv)
    path = make_tiny(
        args.model_type, args.out, seed=args.seed, layers=args.layers, hidden=args.hidden, heads=args.heads
    )
    print(f"wrote a tiny random {args.model_type} model and tokenizer to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
