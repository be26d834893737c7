"""Which causal-LM model types of the installed transformers `sinklab measure` supports, tested, not listed by
hand: every type of `MODEL_FOR_CAUSAL_LM_MAPPING_NAMES` is built small from its own config class
(`shrink_config`), saved, loaded the way `sinklab measure --model DIR` loads it, measured, and its α table
compared with the α of eager attention maps of the same ids (`check_model_type`).

    python -m sinklab.measure.support --ablate [--types a,b,...] [--write docs/support_matrix.md]

writes the matrix docs/measure.md links to (tests/measure/test_support_matrix.py runs the same check).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TOLERANCE = 1e-4  # max |Δα| against eager attention maps
T = 24  # tokens: longer than the shrunk windows (8) and chunks
VOCAB = 320

# Config keys set small where a config class has them (the values keep every feature on: windows and chunks
# shorter than T, several experts, low ranks).
SMALL: dict[str, Any] = {
    "hidden_size": 64,
    "n_embd": 64,
    "d_model": 64,
    "dim": 64,
    "embed_dim": 64,
    "intermediate_size": 128,
    "ffn_dim": 128,
    "n_inner": 128,
    "ffn_hidden_size": 128,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
    "expert_intermediate_size": 32,
    "num_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_attention_heads": 4,
    "decoder_ffn_dim": 128,
    "encoder_ffn_dim": 128,
    "index_num_heads": 2,
    "indexer_n_heads": 2,
    "indexer_kv_heads": 1,
    "indexer_head_dim": 16,
    "indexer_budget": 8,
    "indexer_compress_ratio": 4,
    "mamba_d_ssm": 128,
    "expand": 1,
    "n_groups": 1,
    "n_head": 4,
    "n_heads": 4,
    "num_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "kv_channels": 16,
    "num_local_experts": 4,
    "num_experts": 4,
    "n_routed_experts": 4,
    "moe_num_experts": 4,
    "num_experts_per_tok": 2,
    "num_experts_per_token": 2,
    "num_expert_group": 1,
    "linear_head_dim": 16,
    "linear_num_heads": 4,
    "layer_group_size": 2,
    "moe_k": 2,
    "n_shared_experts": 1,
    "topk_group": 1,
    "n_group": 1,
    "sliding_window": 8,
    "attention_chunk_size": 8,
    "window_size": 8,
    "rotary_dim": 8,
    "kv_lora_rank": 16,
    "q_lora_rank": 16,
    "qk_rope_head_dim": 8,
    "qk_nope_head_dim": 8,
    "qk_head_dim": 16,
    "v_head_dim": 16,
    "index_head_dim": 16,
    "index_n_heads": 2,
    "index_topk": 8,
    "vocab_size": VOCAB,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "first_k_dense_replace": 1,
    "mamba_d_state": 8,
    "mamba_d_conv": 4,
    "mamba_expand": 2,
    "mamba_n_heads": 8,
    "mamba_d_head": 16,
    "mamba_headdim": 16,
    "mamba_n_groups": 1,
    "state_size": 8,
    "ssm_state_size": 8,
    "time_step_rank": 8,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 16,
    "linear_value_head_dim": 16,
    "is_decoder": True,  # encoder families' ...ForCausalLM heads are causal only as decoders
    "attn_layer_period": 2,
    "attn_layer_offset": 1,
    "expert_layer_period": 2,
    "expert_layer_offset": 1,
}
INDEXER = ("indexer_n_heads", "indexer_kv_heads", "indexer_head_dim", "indexer_budget")
INDEXER += ("indexer_compress_ratio",)
LAYERS = 4  # enough for a hybrid's pattern to hold attention and other layers
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")


def _overrides(defaults: dict[str, Any], layers: int) -> dict[str, Any]:
    out = {k: v for k, v in SMALL.items() if k in defaults and defaults[k] is not None}
    # keep what a default left unset unset (q_lora_rank None = no query compression, no window), except
    # sizes that other sizes are derived from
    always = ("head_dim", "num_key_value_heads", "num_experts_per_tok", "n_group", "topk_group", *INDEXER)
    out.update({k: SMALL[k] for k in always if k in defaults})
    if "is_decoder" in defaults:
        out["is_decoder"] = True
    if isinstance(defaults.get("num_experts_per_tok"), int):  # some routers take one expert only
        out["num_experts_per_tok"] = min(SMALL["num_experts_per_tok"], defaults["num_experts_per_tok"])
    default_layers = next((defaults[k] for k in LAYER_KEYS if isinstance(defaults.get(k), int)), None)
    out.update({k: layers for k in LAYER_KEYS if k in defaults and isinstance(defaults[k], int)})
    shared = defaults.get("num_kv_shared_layers")
    if isinstance(shared, int) and shared > 0 and default_layers:  # the same share of layers reuses K/V
        out["num_kv_shared_layers"] = max(1, round(layers * shared / default_layers))
        if out["num_kv_shared_layers"] >= layers:
            out["num_kv_shared_layers"] = layers
    if "attn_layer_indices" in defaults:  # hybrids that list their attention layers
        out["attn_layer_indices"] = list(range(1, layers, 2))
    for key in ("decoder_layers", "encoder_layers"):
        if key in defaults:
            out[key] = layers
    for key, value in defaults.items():  # per-layer lists: every kind of layer kept where there is room
        if (
            isinstance(value, list)
            and default_layers
            and len(value) == default_layers
            and layers < len(value)
        ):
            is_pattern = key in PATTERNS or all(isinstance(v, str) for v in value)
            out[key] = _spread(value, layers) if is_pattern else value[:layers]
    if isinstance(defaults.get("per_layer_config"), dict):
        out["per_layer_config"] = {k: v for k, v in defaults["per_layer_config"].items() if int(k) < layers}
    if isinstance(defaults.get("attention_types"), list):  # GPT-Neo: [[kinds, repeats]]
        kinds = defaults["attention_types"][0][0]
        out["attention_types"] = [[kinds, max(1, layers // len(kinds))]]
    if "qk_rope_head_dim" in defaults and "head_dim" in out:  # MLA: head_dim is the rotary part
        out["head_dim"] = out.get("qk_rope_head_dim", SMALL["qk_rope_head_dim"])
    kv, heads = defaults.get("num_key_value_heads"), defaults.get("num_attention_heads")
    if "num_key_value_heads" in out and kv in (None, heads):
        out["num_key_value_heads"] = out.get("num_attention_heads", 4)
    return out


# Hybrids whose default config holds one kind of layer only: their layer kinds, alternated.
KINDS = {
    "granitemoehybrid": ("linear_attention", "full_attention"),
    "lfm2_moe": ("conv", "full_attention"),
}
PATTERNS = ("layer_types", "layers_block_type", "hybrid_override_pattern", "block_types")


def _spread(pattern: list[Any], layers: int) -> list[Any]:
    """`layers` entries of a per-layer pattern, every kind of the pattern kept where there is room."""
    kinds = list(dict.fromkeys(pattern))
    picked = kinds[:layers]
    return [picked[i % len(picked)] for i in range(layers)]


def shrink_config(model_type: str, layers: int = LAYERS) -> Any:
    """A small config of `model_type` from its own config class (sub-configs of composite models too)."""
    from transformers import CONFIG_MAPPING

    cls = CONFIG_MAPPING[model_type]
    defaults = cls().to_dict()
    kwargs = _overrides(defaults, layers)
    if model_type in KINDS:
        kinds = KINDS[model_type]
        kwargs["layer_types"] = [kinds[i % len(kinds)] for i in range(layers)]
    for key, value in defaults.items():  # text_config and the like
        if isinstance(value, dict) and key.endswith("_config"):
            sub_type = value.get("model_type")
            sub = _overrides(value, layers)
            if sub_type in CONFIG_MAPPING:
                kwargs[key] = {**value, **sub}
    return cls(**kwargs)


@dataclass
class Row:
    model_type: str
    status: str  # supported / fallback / attention-only / not supported
    reason: str = ""
    max_delta: float | None = None
    attention_layers: list[int] | None = None
    layers: int | None = None
    ablate: str = ""  # mask-sink: ok / clear error (eager fallback) / what went wrong
    seconds: float = 0.0


def _eager_alpha(model: Any, ids: Any) -> tuple[Any, list[int]]:
    import torch

    from sinklab.measure.metrics import importance_scores

    with torch.no_grad():
        out = model(ids, output_attentions=True, use_cache=False)
    t = ids.shape[1]
    maps = [a for a in (getattr(out, "attentions", None) or ()) if a is not None and a.shape[-2:] == (t, t)]
    if not maps:
        return None, []
    alpha = importance_scores(torch.stack(maps, dim=1).float()).numpy()
    return alpha, list(range(len(maps)))


def _first_line(err: BaseException) -> str:
    """The error in one line: its type and the start of its message (validation errors put the reason on
    the second line, so every line counts)."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def check_model_type(model_type: str, folder: Path | None = None, ablate: bool = False) -> Row:
    """Build `model_type` small, measure it as `sinklab measure` does and compare with eager maps."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from sinklab.measure import hf
    from sinklab.measure.checks import MeasureError
    from sinklab.measure.record import AttentionRecord
    from sinklab.observe import BACKEND_EAGER, observe

    start = time.perf_counter()
    row = Row(model_type, "not supported")
    try:
        config = shrink_config(model_type)
    except Exception as err:
        row.reason = f"config cannot be built small: {_first_line(err)}"
        return row
    try:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    except Exception as err:
        row.reason = f"cannot be built from its config: {_first_line(err)}"
        return row
    vocab = model.get_input_embeddings().num_embeddings if model.get_input_embeddings() is not None else VOCAB
    ids = torch.randint(3, min(vocab, VOCAB), (2, T), generator=torch.Generator().manual_seed(1))
    try:
        ref, _ = _eager_alpha(model, ids)
    except Exception as err:
        ref = None
        eager_error = _first_line(err)
    else:
        eager_error = "no attention maps returned"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(folder or tmp) / model_type
        try:
            model.save_pretrained(path)
        except Exception as err:
            row.reason = f"cannot be saved: {_first_line(err)}"
            return row
        del model
        try:
            net = hf.load_hf_model(str(path))
            runner = hf.prepare_hf(net, name=model_type)
            record = AttentionRecord(analyses=False, query_block=7)
            result = observe(runner, ids, record, 2).result()
        except MeasureError as err:
            row.reason = (
                str(err).split(": ", 1)[-1] if "has no attention layers" not in str(err) else str(err)
            )
            row.seconds = time.perf_counter() - start
            return row
        except Exception as err:
            # the matrix names the model type, never the temporary folder it was saved to
            row.reason = f"measure fails: {_first_line(err).replace(str(path), model_type)}"
            row.seconds = time.perf_counter() - start
            return row
        if ref is None:
            row.reason = f"eager attention gives no maps to compare with ({eager_error})"
            row.seconds = time.perf_counter() - start
            return row
        row.layers = runner.model_layers
        row.attention_layers = list(getattr(runner, "attention_layers", None) or range(result.alpha.shape[1]))
        if ref.shape != result.alpha.shape and getattr(runner, "repeated_layers", False):
            row.reason = (
                f"{result.alpha.shape[1]} attention calls for {ref.shape[1]} eager maps: its attention "
                "modules run several softmax maps per layer (e.g. differential attention), eager returns one"
            )
        elif ref.shape != result.alpha.shape:
            row.reason = f"α table shape {result.alpha.shape} differs from eager maps' {ref.shape}"
        else:
            row.max_delta = float(np.abs(ref - result.alpha).max())
            if row.max_delta > TOLERANCE and result.slot_alpha is not None:
                # Eager maps renormalised without the model's sink logit (GraniteSWA applies the sink as an
                # output scale): compare the measured token weights renormalised the same way.
                delta = _renormalised_delta(runner, ids, ref)
                if delta <= TOLERANCE:
                    row.max_delta = delta
                    row.reason = (
                        "eager maps leave the sink logit out; measured α counts its mass as the slot (Δα "
                        "after renormalising without it)"
                    )
            if row.max_delta > TOLERANCE:
                row.reason = f"max |Δα| {row.max_delta:.2e} > {TOLERANCE:g} against eager maps"
            elif runner.backend == BACKEND_EAGER:
                row.status = "fallback"
                row.reason = getattr(runner, "fallback_reason", "") or ""
            elif getattr(runner, "hybrid", False):
                row.status = "attention-only"
            else:
                row.status = "supported"
            if ablate and row.status != "not supported":
                row.ablate = _check_ablate(path, runner, model_type)
    row.seconds = time.perf_counter() - start
    return row


def _renormalised_delta(runner: Any, ids: Any, ref: Any) -> float:
    import numpy as np
    import torch

    from sinklab.measure.metrics import importance_scores
    from sinklab.observe import WeightsObserver, observe

    maps = observe(runner, ids, WeightsObserver(), ids.shape[0]).maps
    full = torch.stack([w / w.sum(-1, keepdim=True) for w, _ in maps], dim=1)
    return float(np.abs(importance_scores(full.float()).numpy() - ref).max())


def _check_ablate(path: Path, runner: Any, model_type: str) -> str:
    """`sinklab ablate --ablations mask-sink` on the folder: "ok" on the registered path; on the eager
    fallback the error must name the ablation and the model type."""
    from sinklab.ablate.api import ablate
    from sinklab.errors import SinklabError

    try:
        ablate(
            str(path), "random", ["mask-sink"], length=T, samples=2, batch_size=2, device="cpu", plots=False
        )
    except SinklabError as err:
        if runner.can_edit:
            return f"fails: {_first_line(err)}"
        text = str(err)
        return "clear error" if "mask-sink" in text and model_type in text else f"unclear error: {text[:120]}"
    except Exception as err:
        return f"fails: {_first_line(err)}"
    return "ok" if runner.can_edit else "ran on the eager fallback"


def _check_in_child(model_type: str, queue: Any) -> None:
    import torch

    torch.set_num_threads(1)
    queue.put(asdict(check_model_type(model_type)))


def check_isolated(model_type: str, timeout: float = 300.0) -> Row:
    """check_model_type in a child process: a crash or a hang is that type's reason, not the caller's end."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_check_in_child, args=(model_type, queue))
    start = time.perf_counter()
    proc.start()
    try:
        found = queue.get(timeout=timeout)
    except Exception:
        found = None
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if found is None:
        reason = f"timed out after {timeout:.0f} s" if proc.exitcode in (None, -9) else "crashed"
        return Row(model_type, "not supported", reason, seconds=time.perf_counter() - start)
    return Row(**found)


def check_in_process(model_type: str, timeout: float = 300.0, ablate: bool = False) -> Row:
    """check_model_type with a time limit (SIGALRM) and any failure turned into the type's reason."""
    import signal

    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"timed out after {timeout:.0f} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(max(1, int(timeout)))
    start = time.perf_counter()
    try:
        return check_model_type(model_type, ablate=ablate)
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt):
            raise
        return Row(model_type, "not supported", _first_line(err), seconds=time.perf_counter() - start)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def causal_lm_types() -> list[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return list(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def matrix_markdown(rows: list[Row]) -> str:
    import transformers

    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    lines = [
        f"# Model types `sinklab measure` supports (transformers {transformers.__version__})",
        "",
        "Generated by `python -m sinklab.measure.support --ablate --write docs/support_matrix.md` (the "
        "check of tests/measure/test_support_matrix.py): every model type of transformers' "
        "`MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`, built small from its own config class, saved, loaded and "
        f"measured as `sinklab measure --model DIR` does, its α compared with eager attention maps of the "
        f"same ids (max |Δα| ≤ {TOLERANCE:g}).",
        "",
        "- **supported**: the registered attention function (`sinklab ablate` edits apply);",
        "- **fallback**: the eager path (output_attentions); measured, edits cannot be applied;",
        "- **attention-only**: a hybrid: its attention layers are measured (labelled by the model's own "
        "layer index, `attention_layers` in metrics.json);",
        "- **not supported**: with the reason.",
        "",
        "Counts: " + ", ".join(f"{s} {n}" for s, n in counts.items()) + f" of {len(rows)}.",
        "",
        "| model type | status | max abs Δα | attention layers (of all) | ablate mask-sink | reason |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r.model_type):
        delta = f"{r.max_delta:.1e}" if r.max_delta is not None else ""
        layers = ",".join(map(str, r.attention_layers)) if r.attention_layers is not None else ""
        if layers and r.layers:
            layers += f" ({r.layers})"
        reason = r.reason.replace("|", "/").replace("\n", " ")
        lines.append(f"| `{r.model_type}` | {r.status} | {delta} | {layers} | {r.ablate} | {reason} |")
    return "\n".join(lines) + "\n"


STATUSES = ("supported", "fallback", "attention-only", "not supported")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sinklab.measure.support", description=__doc__)
    parser.add_argument("--types", default="", help="comma-separated model types (default: all)")
    parser.add_argument("--write", default="", help="write the markdown matrix here")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--ablate", action="store_true", help="also run ablate --ablations mask-sink")
    parser.add_argument("--isolate", action="store_true", help="each type in its own process")
    parser.add_argument("--json", default="", help="append each row as a JSON line here")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--from-json", nargs="*", default=[], help="write --write from these rows instead")
    args = parser.parse_args(argv)
    if args.from_json:
        import json

        lines = [line for f in args.from_json for line in Path(f).read_text().splitlines() if line.strip()]
        by_type = {row.model_type: row for row in (Row(**json.loads(line)) for line in lines)}  # last wins
        rows = list(by_type.values())
        Path(args.write).write_text(matrix_markdown(rows), encoding="utf-8")
        return 0
    types = [t for t in args.types.split(",") if t] or causal_lm_types()
    import json
    from concurrent.futures import ThreadPoolExecutor

    rows = []
    with ThreadPoolExecutor(args.jobs) as pool:
        found = pool.map(lambda t: check_isolated(t, args.timeout), types) if args.isolate else None
        for row in found or (check_in_process(t, args.timeout, args.ablate) for t in types):
            print(f"{row.model_type:28s} {row.status:14s} {row.seconds:6.1f}s {row.reason[:150]}", flush=True)
            rows.append(row)
            if args.json:
                with open(args.json, "a", encoding="utf-8") as f:
                    f.write(json.dumps(asdict(row)) + "\n")
    if args.write:
        Path(args.write).write_text(matrix_markdown(rows), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
