"""Model configuration: nested dataclasses validated against the registries in `__post_init__`.

Names are checked against their registry (an unknown one lists what is accepted) and impossible combinations
raise a ValueError that says why. Defaults are the paper's LLaMA-style model (paper.md §4.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from sinklab.config import check_fields
from sinklab.model.kernels import KERNELS
from sinklab.model.masks import MASKS
from sinklab.model.mlp import MLPS
from sinklab.model.norms import NORMS
from sinklab.model.positions import POSITIONS
from sinklab.model.sinks import KV_BIASES

BACKENDS = ("auto", "sdpa", "linear_scan", "blockwise", "reference")
HEAD_COMBINES = ("concat", "addition")
NORM_POSITIONS = ("pre", "post")
INITS = ("neox_small", "torch_default")
VALUE_DIRECTIONS = ("e1", "ones")


def llama_ffn_dim(d_model: int, multiple_of: int = 64) -> int:
    """LLaMA's SwiGLU width: 8/3 d (the FLOPs of a two-matrix MLP of 4 d) rounded up to a multiple of
    `multiple_of` (fast GEMM shapes). For new presets; the published tiny / nobos / demo results were
    trained with d_ff = 4 d (512), and those presets keep it."""
    return multiple_of * math.ceil(8 * d_model / 3 / multiple_of)


def _choice(name: str, value: str, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise ValueError(f"unknown {name} {value!r}; accepted: {', '.join(accepted)}")


def _unused_options(cfg: object, section: str, choice: str, registry, options: tuple[str, ...]) -> None:
    """An option changed from its default that the chosen registry entry (cfg.<choice>) does not read is an
    error naming the entries that do."""
    chosen = getattr(cfg, choice)
    defaults = {f.name: f.default for f in fields(cfg)}  # type: ignore[arg-type]
    for option in options:
        if getattr(cfg, option) != defaults[option] and option not in registry.get(chosen).options:
            users = [n for n in registry.names() if option in registry.get(n).options]
            raise ValueError(
                f"{section}.{option} has no effect with {choice} {chosen!r}; "
                f"it applies to: {', '.join(users)}"
            )


@dataclass
class AttentionConfig:
    kernel: str = "softmax"  # KERNELS entry: scores -> weights
    normalize: bool | None = None  # divide rows by their sum (None: the kernel's own default)
    mask: str = "causal"  # MASKS entry
    window: int | None = None  # keys seen by each query, itself included (mask "window")
    prefix: int | None = None  # bidirectional prefix length p (mask "prefix")
    sigmoid_bias: float = 0.0  # b in sigmoid(s + b) (kernel "sigmoid")
    sigmoid_bias_log_len: bool = False  # also subtract log(T), Apple's b = -log T (kernel "sigmoid")
    alpha: float = 1.0  # rows sum to alpha (kernel "softmax_scaled")
    p: float = 1.0  # Z = (sum sim^p)^(1/p) (kernels "softmax_pnorm", "sigmoid_pnorm")
    gate: bool = False  # sigmoid gate on each head's output from the layer input (Qiu et al. 2025)
    heads: str = "concat"  # "concat" (standard) or "addition": O = sum_h (A^h V^h) W_O (paper Table 12)
    backend: str = "auto"  # auto | sdpa | linear_scan | blockwise | reference (see attention.py)
    block_size: int = 128  # queries per block on the blockwise path

    def __post_init__(self) -> None:
        check_fields(self, "model.attention.")
        KERNELS.check(self.kernel)
        MASKS.check(self.mask)
        _choice("attention.heads", self.heads, HEAD_COMBINES)
        _choice("attention.backend", self.backend, BACKENDS)
        kernel = KERNELS.get(self.kernel)
        if self.normalize is not None and self.normalize not in kernel.normalize_options:
            raise ValueError(
                f"attention.normalize={self.normalize} is impossible with kernel {self.kernel!r} "
                f"(accepted: {', '.join(map(str, kernel.normalize_options))})"
            )
        _unused_options(
            self, "attention", "kernel", KERNELS, ("sigmoid_bias", "sigmoid_bias_log_len", "alpha", "p")
        )
        if self.p <= 0:
            raise ValueError(f"attention.p must be > 0, got {self.p}")
        if self.alpha <= 0:
            raise ValueError(f"attention.alpha (the rows' sum) must be > 0, got {self.alpha}")
        mask = MASKS.get(self.mask)
        for option in ("window", "prefix"):
            value = getattr(self, option)
            users = [n for n in MASKS.names() if option in MASKS.get(n).options]
            if option in mask.options:
                if value is None or value < 1:
                    raise ValueError(f"mask {self.mask!r} needs attention.{option} >= 1, got {value}")
            elif value is not None:
                raise ValueError(
                    f"attention.{option}={value} has no effect with mask {self.mask!r}; "
                    f"it applies to masks: {', '.join(users)}"
                )
        if self.block_size < 1:
            raise ValueError(f"attention.block_size must be >= 1, got {self.block_size}")
        if self.backend == "sdpa" and not kernel.sdpa:
            users = [n for n in KERNELS.names() if KERNELS.get(n).sdpa]
            raise ValueError(
                f"attention.backend='sdpa' cannot compute kernel {self.kernel!r}; "
                f"SDPA kernels: {', '.join(users)}"
            )
        if self.backend == "linear_scan":
            linear = [n for n in KERNELS.names() if n.startswith("linear_")]
            if self.kernel not in linear or self.resolved_normalize or not mask.plain_causal:
                raise ValueError(
                    "attention.backend='linear_scan' (exact causal prefix sums) needs an unnormalised linear "
                    f"kernel ({', '.join(linear)} with normalize=false) and mask 'causal'"
                )

    @property
    def resolved_normalize(self) -> bool:
        kernel = KERNELS.get(self.kernel)
        return kernel.normalize_default if self.normalize is None else self.normalize


@dataclass
class ModelConfig:
    vocab_size: int = 50432  # training sets it from the tokenizer (rounded up to data.pad_vocab_to)
    context: int = 2048  # longest sequence (learned positions table size), sink token included
    n_layer: int = 4  # decoder blocks
    n_head: int = 4  # attention heads (query heads)
    n_kv_head: int | None = None  # None: n_head (MHA, as the paper); fewer: grouped-query attention
    d_model: int = 128  # residual width; head_dim = d_model / n_head
    d_ff: int | None = None  # None: 4 * d_model (the published presets); llama_ffn_dim(d) for LLaMA's 8/3 d
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    position: str = "rope"  # POSITIONS entry
    rope_base: float = 10000.0  # RoPE theta (position "rope")
    mlp: str = "swiglu"  # MLPS entry
    norm: str = "rmsnorm"  # NORMS entry
    norm_eps: float = 1e-5  # epsilon of every norm
    norm_position: str = "pre"  # "pre" (default) or "post": x <- N1(x + Attn(x)); x <- N2(x + FFN(x))
    kv_bias: str = "none"  # KV_BIASES entry: none | k | v | kv | sink_token
    kv_bias_per_head: bool = True  # one bias per head (paper Table 4) or shared by heads (Table 12 right)
    kv_bias_value: float | None = None  # kv_bias "k": fixed, non-learned value v* = m * direction
    kv_bias_value_direction: str = "e1"  # "e1": v' = [1, 0, ...]; "ones": v'' = [1, ...] / sqrt(d_h)
    kv_bias_key_dims: int | None = None  # d_a learnable dims of k* (rest fixed at 0); None: all d_h
    tie_embeddings: bool = False  # the paper's models have an untied lm_head
    init: str = "neox_small"  # "neox_small": N(0, 2/(5 d)), down/out proj of SwiGLU N(0, (1/sqrt(d)/L)^2)

    def __post_init__(self) -> None:
        if isinstance(self.attention, dict):
            from sinklab.config import from_dict

            self.attention = from_dict(AttentionConfig, self.attention, where="attention.")
        if not isinstance(self.attention, AttentionConfig):
            raise ValueError(
                f"config section 'model.attention' must be a mapping of attention keys, "
                f"got {self.attention!r}"
            )
        check_fields(self, "model.")
        POSITIONS.check(self.position)
        MLPS.check(self.mlp)
        NORMS.check(self.norm)
        KV_BIASES.check(self.kv_bias)
        _choice("norm_position", self.norm_position, NORM_POSITIONS)
        _choice("init", self.init, INITS)
        _choice("kv_bias_value_direction", self.kv_bias_value_direction, VALUE_DIRECTIONS)
        for name in ("vocab_size", "context", "n_layer", "n_head", "d_model"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_head:
            raise ValueError(f"model.d_model={self.d_model} must be divisible by model.n_head={self.n_head}")
        if self.n_kv_head is not None and (self.n_kv_head < 1 or self.n_head % self.n_kv_head):
            raise ValueError(
                f"model.n_kv_head={self.n_kv_head} must divide model.n_head={self.n_head} (grouped queries)"
            )
        if self.d_ff is not None and self.d_ff < 1:
            raise ValueError(f"model.d_ff must be >= 1, got {self.d_ff}")
        if self.rope_base <= 0:
            raise ValueError(f"model.rope_base must be > 0, got {self.rope_base}")
        if self.norm_eps < 0:
            raise ValueError(f"model.norm_eps must be >= 0, got {self.norm_eps}")
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(f"position 'rope' needs an even head dim, got {self.head_dim}")
        if self.position == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"position 'sinusoidal' needs an even d_model, got {self.d_model}")
        kv_options = ("kv_bias_per_head", "kv_bias_value", "kv_bias_value_direction", "kv_bias_key_dims")
        _unused_options(self, "model", "kv_bias", KV_BIASES, kv_options)
        if self.kv_bias_key_dims is not None and not 1 <= self.kv_bias_key_dims <= self.head_dim:
            raise ValueError(
                f"model.kv_bias_key_dims must be in 1..head_dim={self.head_dim}, got {self.kv_bias_key_dims}"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def ffn_dim(self) -> int:
        return self.d_ff or 4 * self.d_model

    def is_llama(self) -> bool:
        """True when the options are exactly those of Hugging Face LlamaForCausalLM (export is possible)."""
        a = self.attention
        return (
            a.kernel == "softmax"
            and a.mask == "causal"
            and not a.gate
            and a.heads == "concat"
            and self.position == "rope"
            and self.mlp == "swiglu"
            and self.norm == "rmsnorm"
            and self.norm_position == "pre"
            and self.kv_bias == "none"
        )
