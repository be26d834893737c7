"""Any Hugging Face causal LM, measured through a registered attention function.

`sinklab` is registered in transformers' `AttentionInterface` (and `AttentionMaskInterface`). The function
runs the model's own attention exactly (SDPA, or the model's eager function where SDPA cannot express it:
logit softcapping, sink logits, models without SDPA support) and, on the side, recomputes the attention
weights one query block at a time from q, k, the mask, the scaling, softcapping and sink logits, feeding
them to the streaming `AttentionRecord`. No T x T map of more than one query block ever exists.

Architectures whose attention does not go through the registry (e.g. Falcon) fall back to eager attention
with `output_attentions`, which the output reports. Falcon's SDPA path with `output_attentions` returns
non-causal maps, so the fallback always loads eager explicitly.

An optional `AttentionEdit` (used by `sinklab ablate`) changes the mask and/or the values of an attention
call before the model's own attention runs; the recomputed weights then see the edited mask too. Without an
edit nothing changes.
"""

from __future__ import annotations

import inspect
import json
import math
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

from sinklab.errors import SinklabError
from sinklab.measure.checks import MeasureError, looks_like_path
from sinklab.measure.observer import AttentionObserver
from sinklab.measure.record import QUERY_BLOCK, AttentionRecord
from sinklab.model.edits import AttentionEdit

ATTN_NAME = "sinklab"
BACKEND_REGISTRY = "registered attention function"
BACKEND_EAGER = "eager fallback (output_attentions)"
BACKEND_SINKLAB = "sinklab model record"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# ---- attention edits --------------------------------------------------------------------------------
def edited_mask(
    mask: torch.Tensor | None, keep: torch.Tensor, causal: bool, q_len: int, kv_len: int
) -> torch.Tensor:
    """The layer's mask (None, boolean or additive) with the keys `keep` forbids removed.

    A query left with no key at all keeps its own row: softmax needs somewhere to put its mass (query 1
    only ever sees key 1, so masking key 1 leaves row 1 as it was)."""
    device = keep.device
    if mask is None or mask.dtype == torch.bool:
        base = mask
        if base is None:  # plain causal (or full) attention, which SDPA ran without a mask
            rows = torch.arange(kv_len - q_len, kv_len, device=device)[:, None]
            cols = torch.arange(kv_len, device=device)[None, :]
            full = torch.ones(q_len, kv_len, dtype=torch.bool, device=device)
            base = (cols <= rows if causal else full)[None, None]
        combined = base & keep
        empty = ~combined.any(dim=-1, keepdim=True)
        return combined | (base & empty)
    # An additive float mask (models that build their own): forbidden keys get the dtype's minimum.
    minimum = torch.finfo(mask.dtype).min
    base_allowed = mask > minimum / 2
    combined = base_allowed & keep
    empty = ~combined.any(dim=-1, keepdim=True)
    return mask.masked_fill(~(combined | (base_allowed & empty)), minimum)


# ---- the registered attention function ------------------------------------------------------------
@dataclass
class _Active:
    """The measurement currently running: which record to feed, how many attention calls so far, and an
    optional edit of every attention call's mask and values."""

    record: AttentionObserver | None
    query_block: int = QUERY_BLOCK
    use_sdpa: bool = True
    calls: int = 0
    scratch: Scratch | None = None
    edit: AttentionEdit | None = None
    # Edited masks of this forward pass by (layer mask, edit mask): layers share both, so one is built once.
    # The tensors are kept with the result, so that their ids cannot be reused while the pass runs.
    edited: dict[tuple[int, int], tuple[Any, torch.Tensor, torch.Tensor]] = field(default_factory=dict)


# The measurement the registered function feeds, per thread / async context: two measurements running at
# once in different threads never see each other's record (a ContextVar, not a shared module global).
_ACTIVE: ContextVar[_Active | None] = ContextVar("sinklab_active_measurement", default=None)


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    if n_rep == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)


def _additive_mask(
    mask: torch.Tensor | None, causal: bool, q_len: int, kv_len: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor | None:
    """The float mask an eager attention function expects, from the boolean/None mask SDPA gets."""
    if mask is not None and mask.dtype != torch.bool:
        return mask
    if mask is None:
        if not causal:
            return None
        # Queries are the last q_len of kv_len positions (no cache here, so q_len == kv_len in practice).
        rows = torch.arange(kv_len - q_len, kv_len, device=device)[:, None]
        mask = (torch.arange(kv_len, device=device)[None, :] <= rows)[None, None]
    return torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, torch.finfo(dtype).min)


def _model_eager_function(module: nn.Module) -> Callable[..., Any] | None:
    return getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)


def sinklab_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: the model's own attention output, plus statistics on the side."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    active = _ACTIVE.get()
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    layer = active.calls if active is not None else 0
    if active is not None and active.edit is not None:
        keep = active.edit.key_mask(layer, query.shape[1], query.shape[2], key.shape[2], query.device)
        if keep is not None:
            cache_key = (id(attention_mask), id(keep))
            hit = active.edited.get(cache_key)
            if hit is None:
                hit = (
                    attention_mask,
                    keep,
                    edited_mask(attention_mask, keep, causal, query.shape[2], key.shape[2]),
                )
                active.edited[cache_key] = hit
            attention_mask = hit[2]
        value = active.edit.value(layer, value, query.shape[1])
    softcap = kwargs.get("softcap")
    sinks = kwargs.get("s_aux")
    if sinks is None:
        sinks = getattr(module, "sinks", None)
    needs_eager = softcap is not None or sinks is not None or (active is not None and not active.use_sdpa)
    eager_fn = _model_eager_function(module) if needs_eager else None
    if needs_eager and eager_fn is not None:
        mask = _additive_mask(attention_mask, causal, query.shape[2], key.shape[2], query.dtype, query.device)
        out, _ = eager_fn(module, query, key, value, mask, dropout=dropout, scaling=scaling, **kwargs)
    elif needs_eager:
        raise RuntimeError(
            f"{type(module).__name__} needs eager attention but its module has no eager function"
        )
    else:
        out, _ = sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    if active is not None and active.record is not None:
        active.calls += 1
        if active.record.wants_layer(layer):
            with torch.no_grad():
                feed_attention(
                    active.record,
                    layer,
                    query,
                    key,
                    value,
                    attention_mask,
                    scaling=scaling,
                    causal=causal,
                    softcap=softcap,
                    sinks=sinks,
                    position_bias=kwargs.get("position_bias"),
                    query_block=active.query_block,
                    scratch=active.scratch,
                )
    elif active is not None:
        active.calls += 1
    return out, None


class Scratch:
    """One reusable buffer for the score blocks of a forward pass: a fresh multi-MB tensor per block costs
    more in page faults than the softmax itself on a CPU."""

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None

    def get(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        numel = math.prod(shape)
        if self._buffer is None or self._buffer.numel() < numel or self._buffer.device != device:
            self._buffer = torch.empty(numel, dtype=torch.float32, device=device)
        return self._buffer[:numel].view(shape)


def _causal_bias(start: int, stop: int, device: torch.device) -> torch.Tensor:
    """(stop - start, stop) additive mask of queries start..stop-1 over the keys they can see: 0 / -inf."""
    rows = torch.arange(start, stop, device=device)[:, None]
    keys = torch.arange(stop, device=device)[None, :]
    return torch.zeros(stop - start, stop, device=device).masked_fill_(keys > rows, float("-inf"))


def feed_attention(
    record: AttentionObserver,
    layer: int,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor | None,
    mask: torch.Tensor | None,
    *,
    scaling: float | None,
    causal: bool = True,
    softcap: float | None = None,
    sinks: torch.Tensor | None = None,
    position_bias: torch.Tensor | None = None,
    query_block: int = QUERY_BLOCK,
    scratch: Scratch | None = None,
) -> None:
    """Recompute softmax weights in query blocks (fp32) exactly as eager attention would, and record them.

    query (B, H, T, D), key/value (B, Hkv, T, D) after positions; mask: None (causal or full), boolean
    (True = attend) or additive float, broadcastable to (B, H, T, T); sinks: (H,) sink logits (gpt-oss).
    """
    record.add_qkv(layer, query, key, value)
    b, h, q_len, d = query.shape
    kv_len = key.shape[2]
    if q_len != kv_len:
        raise RuntimeError(
            f"measurement needs a full forward without cache (got {q_len} queries, {kv_len} keys)"
        )
    scratch = scratch or Scratch()
    # (B*H, T, D) and (B*H, D, T): one batched GEMM per block.
    q = query.float().contiguous().flatten(0, 1)
    k_t = _repeat_kv(key, h // key.shape[1]).float().contiguous().flatten(0, 1).transpose(1, 2)
    scale = scaling if scaling is not None else d**-0.5
    # A block of queries start..stop-1 sees no key at or after `stop` when the mask is causal: compute only
    # the keys it can see (about half the work).
    if mask is None:
        prefix_only = causal
    elif mask.dtype == torch.bool:
        prefix_only = not bool(
            (mask & torch.ones(q_len, kv_len, dtype=torch.bool, device=mask.device).triu(1)).any()
        )
    else:
        prefix_only = False
    # Plain causal attention: the scale and the causal mask go into the GEMM itself (baddbmm), no extra pass.
    fused = mask is None and causal and softcap is None and position_bias is None
    sink = sinks.float().reshape(1, h, 1, 1) if sinks is not None else None
    for start in range(0, q_len, query_block):
        stop = min(start + query_block, q_len)
        n_keys = stop if prefix_only else kv_len
        scores = scratch.get((b * h, stop - start, n_keys), q.device)
        if fused:
            bias = _causal_bias(start, stop, q.device)
            torch.baddbmm(bias, q[:, start:stop], k_t[..., :n_keys], alpha=scale, out=scores)
            scores = scores.view(b, h, stop - start, n_keys)
        else:
            torch.bmm(q[:, start:stop], k_t[..., :n_keys], out=scores)
            scores = scores.view(b, h, stop - start, n_keys).mul_(scale)
            if softcap is not None:
                # Gemma2: softcap after scaling, before the mask.
                scores = torch.tanh(scores / softcap).mul_(softcap)
            if position_bias is not None:
                scores = scores + position_bias[..., start:stop, :n_keys].float()
            if mask is None:
                if causal:
                    scores.add_(_causal_bias(start, stop, q.device))
            elif mask.dtype == torch.bool:
                scores.masked_fill_(~mask[..., start:stop, :n_keys], float("-inf"))
            else:
                scores = scores + mask[..., start:stop, :n_keys].float()
        if sink is None:
            contiguous = scores.is_contiguous()
            weights = torch.softmax(scores, dim=-1, out=scores) if contiguous else scores.softmax(-1)
            slot = None
        else:
            # The sink logit joins the softmax denominator; its share is the slot's mass.
            lse = torch.logaddexp(torch.logsumexp(scores, dim=-1, keepdim=True), sink)
            weights = torch.exp(scores - lse)
            slot = torch.exp(sink - lse).squeeze(-1)
        record.add_weights(layer, weights, start, slot=slot)
        del scores, weights


def register() -> None:
    """Register the `sinklab` attention and mask functions with transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_NAME, sinklab_attention_forward)
    # The same boolean masks SDPA gets (None where plain causal suffices), so SDPA runs exactly as usual.
    AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)


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
        raise ValueError(f"unknown dtype {dtype!r}; accepted: {', '.join(DTYPES)}")
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
        except (KeyError, ValueError) as err:
            if attn_implementation != ATTN_NAME or "Unrecognized configuration class" in str(err):
                raise
            # Attention classes chosen at construction (Falcon) reject a registered function: load eager,
            # prepare_hf then measures through the eager fallback.
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
class HFRunner:
    """Runs an HF causal LM and feeds an AttentionRecord; `backend` says which path is used."""

    model: nn.Module
    backend: str = BACKEND_REGISTRY
    query_block: int = QUERY_BLOCK
    name: str = ""
    layers: int = 0
    _hooks: list[Any] = field(default_factory=list)
    _record: AttentionObserver | None = None

    def __post_init__(self) -> None:
        blocks = decoder_blocks(self.model)
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
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def forward(
        self,
        ids: torch.Tensor,
        record: AttentionObserver | None,
        *,
        all_logits: bool = True,
        edit: AttentionEdit | None = None,
    ) -> torch.Tensor:
        """Logits of ids (B, T); feeds `record` (if given) for every attention layer. all_logits=False
        projects only the last position: measuring needs no logits, and for a small model with a large
        vocabulary the projection is about a third of the forward's time and its largest activation.
        `edit` changes every attention call's mask / values (registered-function path only)."""
        if edit is not None and self.backend != BACKEND_REGISTRY:
            raise SinklabError(
                f"{self.name or type(self.model).__name__} does not route attention through transformers' "
                "attention registry, so its attention cannot be edited (mask / value ablations)"
            )
        ids = ids.to(self.device)
        self._record = record
        extra = _logits_kwargs(self.model, all_logits)
        try:
            if self.backend == BACKEND_EAGER:
                out = self.model(ids, use_cache=False, output_attentions=record is not None, **extra)
                if record is not None:
                    for layer, attn in enumerate(out.attentions):
                        self._feed_eager(record, layer, attn)
                return out.logits
            active = _Active(
                record,
                query_block=self.query_block,
                use_sdpa=_supports_sdpa(self.model),
                scratch=Scratch(),
                edit=edit,
            )
            token = _ACTIVE.set(active)
            try:
                out = self.model(ids, use_cache=False, **extra)
                self.layers = active.calls
            finally:
                _ACTIVE.reset(token)
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


def _supports_sdpa(model: nn.Module) -> bool:
    return bool(getattr(model, "_supports_sdpa", True))


def _check_causal(runner: HFRunner, vocab: int) -> None:
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


def prepare_hf(
    model: nn.Module, name: str = "", query_block: int = QUERY_BLOCK, force_eager: bool = False
) -> HFRunner:
    """Route an HF model through the registered function if its attention allows, else eager fallback."""
    register()
    vocab = model.get_input_embeddings().num_embeddings
    if not force_eager:
        try:
            model.set_attn_implementation(ATTN_NAME)
        except (ValueError, KeyError, AttributeError):
            force_eager = True
    if not force_eager:
        runner = HFRunner(model, BACKEND_REGISTRY, query_block, name)
        probe = AttentionRecord(analyses=False)
        probe.start_batch(1, 8)
        runner.forward(torch.randint(3, max(vocab, 4), (1, 8)), probe)
        if runner.layers > 0:
            _check_causal(runner, vocab)
            return runner
        for hook in runner._hooks:
            hook.remove()
    # Falcon & co.: eager attention, explicitly (never SDPA with output_attentions).
    model.set_attn_implementation("eager")
    runner = HFRunner(model, BACKEND_EAGER, query_block, name)
    _check_causal(runner, vocab)
    return runner


def _accepts(model: nn.Module, argument: str) -> bool:
    try:
        return argument in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _logits_kwargs(model: nn.Module, all_logits: bool) -> dict[str, Any]:
    """Forward arguments for every position's logits, or only the last one's where the model allows it."""
    return {} if all_logits or not _accepts(model, "logits_to_keep") else {"logits_to_keep": 1}


def forward_accepts_record(model: nn.Module) -> bool:
    return _accepts(model, "record")


@dataclass
class RecordRunner:
    """A model whose forward takes `record=` (sinklab's SinkLM): its attention modules feed the record."""

    model: nn.Module
    backend: str = BACKEND_SINKLAB
    name: str = ""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def forward(
        self, ids: torch.Tensor, record: AttentionObserver | None, *, all_logits: bool = True
    ) -> torch.Tensor:
        return self.model(ids.to(self.device), record=record, **_logits_kwargs(self.model, all_logits))
