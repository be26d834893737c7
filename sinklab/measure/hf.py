"""Any Hugging Face causal LM, loaded and run for a measurement; the runners that feed the record.

`load_hf_model` loads a hub id or local folder (safetensors only unless pickles are allowed, clear errors for
what cannot be measured), and `prepare_hf` wraps it in an `HFRunner` that measures through the `sinklab`
attention function registered with transformers (sinklab.measure.hook): the model's own attention runs, and
the weights are recomputed on the side one query block at a time.

Eager fallback: where the registered function cannot be used (the model rejects it, its non-eager path raises
or lets later tokens change earlier outputs, or its attention never calls the registry: Bloom, GPT-Neo, ...),
the model runs eager attention with `output_attentions` and the runner feeds the record from the returned maps
(`backend` = BACKEND_EAGER; `fallback_reason` and the measurement's notes say why). Eager is set on every
config explicitly (SDPA with `output_attentions` can return non-causal maps, and a model without an attention
interface keeps whatever it was loaded with). q, k and v never leave the model there: that path has no
key/query/value norms or angles, and cannot apply attention edits. The causality check guards both paths.

Layers: the record's layers are the model's attention layers in order, labelled by the attention modules' own
`layer_idx` (`HFRunner.attention_layers`): a hybrid's state-space / recurrent layers are skipped, not counted.
A model with no attention layer at all (Mamba, RWKV) is a MeasureError: one line, exit code 2.

sinklab's own SinkLM has its own runner (sinklab.model.runner.SinkLMRunner).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

from sinklab.errors import SinklabError
from sinklab.measure.checks import MeasureError, looks_like_path
from sinklab.measure.hook import ATTN_NAME, measuring, register
from sinklab.measure.record import AttentionRecord
from sinklab.model.edits import AttentionEdit
from sinklab.observe import BACKEND_EAGER, BACKEND_REGISTRY, QUERY_BLOCK, AttentionObserver, ModelRunner

PROBE_LENGTH = 8  # tokens of the forwards that choose the path
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# ---- loading -------------------------------------------------------------------------------------
def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; accepted: auto, cpu, cuda, cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SinklabError("--device cuda was asked for but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32  # the paper's open-source evaluation ran in fp32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown --dtype {dtype!r}; accepted: {', '.join(DTYPES)}")
    return DTYPES[dtype]


def load_hf_model(
    name: str,
    *,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    attn_implementation: str = ATTN_NAME,
) -> nn.Module:
    """AutoModelForCausalLM from a hub id or local folder, with clear errors for what cannot be measured."""
    from transformers import AutoConfig, AutoModelForCausalLM

    register()
    local = Path(name).expanduser()
    if not local.exists() and looks_like_path(name):
        raise FileNotFoundError(
            f"--model {name!r} does not exist; --model takes a Hugging Face model folder, a sinklab run / "
            "model / checkpoint directory or a hub id (NAME or ORG/NAME)"
        )
    if local.is_file():
        raise MeasureError(
            f"--model {name!r} is a file; --model takes a folder (config.json + weights, or a GGUF file's "
            "folder with --gguf-file NAME), a sinklab run / model / checkpoint directory or a hub id"
        )
    if local.is_dir() and not (local / "config.json").exists() and gguf_file is None:
        raise FileNotFoundError(
            f"--model {name!r} has no config.json: not a Hugging Face model folder, sinklab model, run or "
            "checkpoint directory (a GGUF file needs --gguf-file NAME)"
        )
    if gguf_file is not None and local.is_dir() and not (local / gguf_file).is_file():
        # transformers would report this as a hub lookup failure; say which file is missing instead.
        found = sorted(p.name for p in local.glob("*.gguf"))
        raise FileNotFoundError(
            f"--gguf-file {gguf_file!r} not found in {name!r}; it takes the name of a GGUF file in the "
            f"--model folder (GGUF files there: {', '.join(found) or 'none'})"
        )
    if local.is_dir() and gguf_file is None:
        _check_local_files(local)
    common: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if gguf_file is not None:
        common["gguf_file"] = gguf_file
    try:
        config = AutoConfig.from_pretrained(name, **common)
    except ValueError as err:  # unknown model type / remote code needed
        raise MeasureError(f"cannot load the config of {name!r}: {err}") from err
    except OSError as err:
        raise FileNotFoundError(
            f"model {name!r} is neither a local folder nor reachable on the Hugging Face hub ({err})"
        ) from err
    kwargs: dict[str, Any] = {
        **common,
        "dtype": dtype or torch.float32,
        "attn_implementation": attn_implementation,
    }
    if gguf_file is None and not allow_pickle:
        kwargs["use_safetensors"] = True  # never unpickle weights unless the user says so
    try:
        try:
            model = AutoModelForCausalLM.from_pretrained(name, config=config, **kwargs)
        except (KeyError, ValueError, AttributeError, TypeError, NotImplementedError) as err:
            if attn_implementation != ATTN_NAME or "Unrecognized configuration class" in str(err):
                raise
            # Attention classes chosen at construction (Falcon) or models that accept no attention
            # implementation at all (state-space models) reject a registered function: load eager, prepare_hf
            # then measures through the eager fallback (or says there is no attention).
            model = AutoModelForCausalLM.from_pretrained(
                name, config=config, **{**kwargs, "attn_implementation": "eager"}
            )
    except ValueError as err:
        text = str(err)
        if "Unrecognized configuration class" in text:
            raise ValueError(
                f"{name!r} (model_type {config.model_type!r}) is not a causal language model that "
                "transformers' AutoModelForCausalLM can load; sinklab measure needs a decoder-only LM"
            ) from err
        raise
    except OSError as err:
        pickled = local.is_dir() and any(local.glob("*.bin")) and not allow_pickle
        hint = " (.bin weights there: pass --allow-pickle to load them)" if pickled else ""
        raise FileNotFoundError(f"cannot load the weights of {name!r}: {err}{hint}") from err
    except SafetensorError as err:  # a hub download (local folders were checked above)
        raise MeasureError(
            f"a weights file of {name!r} is not a readable safetensors file ({err}): truncated or corrupt; "
            "download the model again"
        ) from err
    return model.to(device).eval()


def _check_local_files(folder: Path) -> None:
    """config.json and the safetensors headers of a local model folder, so that a broken file is named
    (transformers reports a bad config.json as a failed hub lookup and a bad header as a bare
    SafetensorError). Reading a header is cheap: safe_open maps the file and parses only its header."""
    from safetensors import safe_open

    config = folder / "config.json"
    try:
        parsed = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MeasureError(f"{config} is not valid JSON ({err}); a model folder needs one") from None
    if not isinstance(parsed, dict):
        raise MeasureError(f"{config} holds a {type(parsed).__name__}, not a JSON object: not a model config")
    for weights in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise MeasureError(
                f"{weights} is not a readable safetensors file ({err}): truncated or corrupt; download or "
                "save the model again"
            ) from None


def decoder_blocks(model: nn.Module) -> nn.ModuleList | None:
    """The ModuleList of decoder blocks: the largest ModuleList with num_hidden_layers entries."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    n = getattr(cfg, "num_hidden_layers", None)
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) == n]
    if not lists:
        return None
    return max(lists, key=lambda m: sum(p.numel() for p in m.parameters()))


@dataclass
class HFRunner(ModelRunner):
    """Runs an HF causal LM and feeds an AttentionRecord; `backend` says which path is used: the registered
    `sinklab` attention function, or the eager fallback (maps from output_attentions) for a model whose
    attention cannot go through transformers' registry (`fallback_reason` says why).

    The record's layers are the model's attention layers in order; `attention_layers` holds the model's own
    index of each (the attention modules' `layer_idx`), so a hybrid's recurrent / state-space layers and
    skipped layers are labelled right; None where the model does not say (then they are 0, 1, ...)."""

    model: nn.Module
    backend: str = BACKEND_REGISTRY
    query_block: int = QUERY_BLOCK
    name: str = ""
    layers: int = 0
    blocks: nn.ModuleList | None = field(default=None, repr=False)
    attention_layers: list[int] | None = None
    fallback_reason: str = ""
    repeated_layers: bool = False  # attention modules called more than once per forward (layer_idx repeats)
    _layer_of: dict[int, int] | None = None
    _seen: list[int | None] = field(default_factory=list, repr=False)
    _hooks: list[Any] = field(default_factory=list)
    _record: AttentionObserver | None = None

    def __post_init__(self) -> None:
        self.blocks = blocks = decoder_blocks(self.model)
        if blocks is not None:
            # Hidden-state norms from the blocks themselves: the paper takes the last block before the final
            # norm, which HF's output_hidden_states does not give.
            self._hooks.append(blocks[0].register_forward_pre_hook(self._embed_hook, with_kwargs=True))
            for i, block in enumerate(blocks):
                self._hooks.append(block.register_forward_hook(self._block_hook(i + 1)))

    def _embed_hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._record is not None:
            hidden = args[0] if args else kwargs.get("hidden_states")
            if isinstance(hidden, torch.Tensor):
                self._record.add_hidden(0, hidden)

    def _block_hook(self, index: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._record is not None:
                hidden = output[0] if isinstance(output, (tuple, list)) else output
                if isinstance(hidden, torch.Tensor):
                    self._record.add_hidden(index, hidden)

        return hook

    @property
    def model_type(self) -> str:
        return str(
            getattr(getattr(self.model, "config", None), "model_type", "") or type(self.model).__name__
        )

    @property
    def model_layers(self) -> int | None:
        """The model's own number of layers (attention or not): a decoder's where the config also counts an
        encoder's."""
        cfg = self.model.config.get_text_config() if hasattr(self.model.config, "get_text_config") else None
        cfg = cfg or self.model.config
        n = getattr(cfg, "decoder_layers", None)
        n = n if isinstance(n, int) else getattr(cfg, "num_hidden_layers", None)
        return int(n) if isinstance(n, int) else None

    @property
    def hybrid(self) -> bool:
        """Only some of the model's layers are attention layers (the others recurrent / state-space)."""
        total = self.model_layers
        return self.attention_layers is not None and total is not None and len(self.attention_layers) < total

    @property
    def can_edit(self) -> bool:
        return self.backend == BACKEND_REGISTRY

    def _run(
        self,
        ids: torch.Tensor,
        record: AttentionObserver | None,
        edit: AttentionEdit | None,
        all_logits: bool,
    ):
        """The model's own attention runs; the registered function recomputes the weights for `record` and
        applies `edit` (registered-function path only). all_logits=False projects only the last position:
        for a small model with a large vocabulary the projection is about a third of the forward's time
        and its largest activation."""
        if edit is not None and not self.can_edit:
            why = f" ({self.fallback_reason})" if self.fallback_reason else ""
            raise SinklabError(
                f"{self.name or type(self.model).__name__} (model type {self.model_type}) is measured on the "
                f"eager fallback{why}, where attention edits (mask / value ablations) cannot be applied"
            )
        self._record = record
        extra = _logits_kwargs(self.model, all_logits)
        try:
            if self.backend == BACKEND_EAGER:
                out = self.model(ids, use_cache=False, output_attentions=record is not None, **extra)
                if record is not None:
                    maps = [a for a in (getattr(out, "attentions", None) or ()) if _is_map(a, ids.shape[1])]
                    for layer, attn in enumerate(maps):
                        self._feed_eager(record, layer, attn)
                return out.logits
            with measuring(
                record,
                query_block=self.query_block,
                use_sdpa=_supports_sdpa(self.model),
                edit=edit,
                layer_of=self._layer_of,
                positions=self.positions if record is not None else None,
            ) as active:
                out = self.model(ids, use_cache=False, **extra)
                self.layers = active.calls
                self._seen = active.seen
            if active.fallbacks:
                self.fast_fallbacks = self.fast_fallbacks or {}
                for why, n in active.fallbacks.items():
                    self.fast_fallbacks[why] = self.fast_fallbacks.get(why, 0) + n
            return out.logits
        finally:
            self._record = None

    def _feed_eager(self, record: AttentionObserver, layer: int, attn: torch.Tensor) -> None:
        if not record.wants_layer(layer):
            return
        for start in range(0, attn.shape[2], self.query_block):
            block = attn[:, :, start : start + self.query_block].float()
            row_sum = block.sum(-1)
            # Rows that fall short of 1 (a sink logit dropped from the returned map): the rest is the slot.
            slot = (1.0 - row_sum).clamp_min(0) if bool((row_sum < 1 - 1e-4).any()) else None
            record.add_weights(layer, block, start, slot=slot)

    def label_layers(self, seen: list[int | None]) -> None:
        """Use the attention modules' own layer_idx (one forward's, in call order) where every call has a
        distinct one; else count the calls."""
        if seen and all(i is not None for i in seen) and len(set(seen)) == len(seen):
            self.attention_layers = sorted(int(i) for i in seen if i is not None)
            self._layer_of = {idx: n for n, idx in enumerate(self.attention_layers)}
        else:
            self.attention_layers, self._layer_of = None, None
            self.repeated_layers = bool(seen) and None not in seen and len(set(seen)) < len(seen)

    def remove_hooks(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []


def _set_eager(model: nn.Module) -> None:
    """Eager attention on every config of the model: set_attn_implementation leaves a model that has no
    attention interface (Bloom) on what it was loaded with, whose masks (SDPA's, for `sinklab`) its own
    attention would then add as if they were eager masks (and leak the future)."""
    model.set_attn_implementation("eager")
    for module in model.modules():
        cfg = getattr(module, "config", None)
        if cfg is not None and getattr(cfg, "_attn_implementation", "eager") != "eager":
            cfg._attn_implementation = "eager"


def _is_map(attn: Any, length: int) -> bool:
    """An attention map (B, H, T, T) of output_attentions: not None (a hybrid's other layers), not a
    recurrent state (RWKV) nor a linear-attention layer's block (MiniMax)."""
    return isinstance(attn, torch.Tensor) and attn.dim() == 4 and tuple(attn.shape[-2:]) == (length, length)


def _supports_sdpa(model: nn.Module) -> bool:
    return bool(getattr(model, "_supports_sdpa", True))


def _check_no_future_leak(runner: HFRunner, vocab: int) -> None:
    """Changing the last token must not change earlier outputs; else the model is not a causal LM."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, max(vocab, 4), (1, 8), generator=gen)
    other = ids.clone()
    other[0, -1] = 3 + (int(ids[0, -1]) - 3 + 1) % max(vocab - 3, 1)
    a = runner.forward(ids, None)[:, :-1].float()
    b = runner.forward(other, None)[:, :-1].float()
    if not torch.allclose(a, b, atol=1e-4, rtol=1e-3):
        raise ValueError(
            f"{runner.name} ({type(runner.model).__name__}) is not causal: changing the last token changed "
            "the outputs at earlier positions. sinklab measure needs a causal (decoder-only) LM."
        )


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__


def _module_layer_indices(model: nn.Module) -> list[int]:
    """The distinct `layer_idx` of the model's attention modules (classes named ...Attention...)."""
    found = {
        m.layer_idx
        for m in model.modules()
        if "attention" in type(m).__name__.lower() and isinstance(getattr(m, "layer_idx", None), int)
    }
    return sorted(found)


def _registry_runner(
    model: nn.Module, name: str, query_block: int, vocab: int
) -> tuple[HFRunner | None, str]:
    """The runner on the registered function, or None and why it cannot be used."""
    try:
        model.set_attn_implementation(ATTN_NAME)
    except Exception as err:
        return None, f"it rejects a registered attention function ({_first_line(err)})"
    runner = HFRunner(model, BACKEND_REGISTRY, query_block, name)
    probe = AttentionRecord(analyses=False)
    probe.start_batch(1, PROBE_LENGTH)
    try:
        runner.forward(torch.randint(3, max(vocab, 4), (1, PROBE_LENGTH)), probe)
        if runner.layers == 0:
            runner.remove_hooks()
            return None, "its attention does not go through transformers' attention registry"
        runner.label_layers(runner._seen)
        _check_no_future_leak(runner, vocab)
    except ValueError as err:
        runner.remove_hooks()
        if "is not causal" in str(err):
            return None, "its non-eager attention path lets later tokens change earlier outputs"
        return None, f"its non-eager attention path fails ({_first_line(err)})"
    except Exception as err:
        runner.remove_hooks()
        return None, f"its non-eager attention path fails ({_first_line(err)})"
    return runner, ""


def prepare_hf(
    model: nn.Module, name: str = "", query_block: int = QUERY_BLOCK, force_eager: bool = False
) -> HFRunner:
    """Route an HF model through the registered function where its attention allows, else the eager
    fallback: a model that rejects the `sinklab` implementation, fails on it, lets the future leak on it, or
    whose attention never calls it is measured from eager attention's output_attentions maps instead. The
    causality check guards either path; a model without attention layers is a MeasureError."""
    register()
    vocab = model.get_input_embeddings().num_embeddings
    reason = "asked for (force_eager)"
    if not force_eager:
        runner, reason = _registry_runner(model, name, query_block, vocab)
        if runner is not None:
            return runner
    model_type = str(getattr(model.config, "model_type", "") or type(model).__name__)
    # Falcon & co.: eager attention, explicitly (Falcon's SDPA path with output_attentions returns non-causal
    # maps).
    try:
        _set_eager(model)
    except Exception as err:
        raise MeasureError(
            f"{name or model_type} (model type {model_type}) cannot be measured: {reason}, and it has "
            f"no eager attention ({_first_line(err)})"
        ) from err
    runner = HFRunner(model, BACKEND_EAGER, query_block, name, fallback_reason=reason)
    try:
        with torch.no_grad():
            ids = torch.randint(3, max(vocab, 4), (1, PROBE_LENGTH))
            out = model(ids, use_cache=False, output_attentions=True)
    except Exception as err:
        runner.remove_hooks()
        raise MeasureError(
            f"{name or model_type} (model type {model_type}) cannot be measured: {reason}, and its eager "
            f"attention fails too ({_first_line(err)})"
        ) from err
    attentions = getattr(out, "attentions", None) or ()
    # (B, H, T, T) maps only: a recurrent model's `attentions` (RWKV's) are states, not attention maps
    maps = [i for i, a in enumerate(attentions) if _is_map(a, PROBE_LENGTH)]
    wider = [
        i
        for i, a in enumerate(attentions)
        if isinstance(a, torch.Tensor) and a.dim() == 4 and a.shape[-2] == PROBE_LENGTH != a.shape[-1]
    ]
    if wider:
        runner.remove_hooks()
        raise MeasureError(
            f"{name or model_type} (model type {model_type}) cannot be measured: {reason}, and the eager "
            f"attention of layer(s) {', '.join(map(str, wider))} also attends to keys that are not token "
            "positions (compressed or memory keys), so α per key position is not defined there"
        )
    if not maps:
        runner.remove_hooks()
        raise MeasureError(
            f"{name or model_type} (model type {model_type}) has no attention layers: sinklab measures "
            "attention, there is nothing to measure"
        )
    total = runner.model_layers
    if len(attentions) == total:
        runner.attention_layers = maps
    else:
        own = _module_layer_indices(model)
        runner.attention_layers = own if len(own) == len(maps) else None
    _check_no_future_leak(runner, vocab)
    return runner


def _accepts(model: nn.Module, argument: str) -> bool:
    try:
        return argument in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _logits_kwargs(model: nn.Module, all_logits: bool) -> dict[str, Any]:
    """Forward arguments for every position's logits, or only the last one's where the model allows it."""
    return {} if all_logits or not _accepts(model, "logits_to_keep") else {"logits_to_keep": 1}
