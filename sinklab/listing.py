"""`sinklab list`: every registry with each entry's one-line docstring, the variants that are flags, the
presets, suites, scales and ablations. It sits in the CLI layer, above everything it lists."""

from __future__ import annotations

from sinklab.model.kernels import KERNELS
from sinklab.model.masks import MASKS
from sinklab.model.mlp import MLPS
from sinklab.model.norms import NORMS
from sinklab.model.positions import POSITIONS
from sinklab.model.presets import PRESETS, preset_names
from sinklab.model.sinks import KV_BIASES
from sinklab.registry import Registry


def _doc(obj: object) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def _registry_entries(registry: Registry, order: list[str] | None = None) -> list[tuple[str, str]]:
    return [(name, _doc(registry.get(name))) for name in (order or registry.names())]


# Variants set by a flag rather than a registry entry; listed so that `sinklab list` names every variant.
FLAG_VARIANTS: list[tuple[str, str]] = [
    ("model.attention.gate=true", "gated attention: a sigmoid gate on each head's output (Qiu et al. 2025)"),
    ("model.norm_position=post", "post-LN: x <- N(x + f(x)), no final norm (paper Sec. 7.2)"),
    ("model.attention.heads=addition", "heads summed instead of concatenated (paper Table 12 left)"),
    ("model.n_kv_head=N", "grouped-query attention with N key/value heads"),
    (
        "model.attention.normalize=false",
        "no row normalisation (sigmoid, elu, linear kernels; paper Sec. 7.4)",
    ),
    ("model.kv_bias_per_head=false", "K/V biases shared by all heads (paper Table 12 right)"),
    ("model.kv_bias_value=M", "a fixed, non-learned value bias v* = M * direction (paper Table 5)"),
    ("model.kv_bias_key_dims=D", "only D learnable dims of the key bias (paper Table 13)"),
]


def sections() -> list[tuple[str, list[tuple[str, str]]]]:
    out = [
        ("kernels (model.attention.kernel)", _registry_entries(KERNELS)),
        ("masks (model.attention.mask)", _registry_entries(MASKS)),
        ("positions (model.position)", _registry_entries(POSITIONS)),
        ("sinks (model.kv_bias)", _registry_entries(KV_BIASES)),
        ("mlps (model.mlp)", _registry_entries(MLPS)),
        ("norms (model.norm)", _registry_entries(NORMS)),
        ("variants that are config flags", FLAG_VARIANTS),
        ("model presets", _registry_entries(PRESETS, preset_names())),
        *_run_sections(),
    ]
    return out


def _run_sections() -> list[tuple[str, list[tuple[str, str]]]]:
    from sinklab.ablate.ablations import ablation_names, describe
    from sinklab.experiments.suites import SCALES, SUITES
    from sinklab.train.presets import RUN_PRESETS

    suites = [
        *_registry_entries(SUITES),
        (
            "open-lms",
            "The paper's public models from the hub (GPT-2, Pythia, OPT, Llama, Mistral), beside Table 1.",
        ),
        (
            "pythia-trajectory",
            "sinklab trajectory on Pythia's checkpoint series (hub): when the sink emerged, by the rule.",
        ),
        ("all", "Every training suite above, each run once."),
    ]
    return [
        ("run presets (sinklab train --preset)", _registry_entries(RUN_PRESETS)),
        ("suites (sinklab reproduce --suite)", suites),
        ("scales (sinklab reproduce --scale)", [(s.name, s.note) for s in SCALES.values()]),
        ("ablations (sinklab ablate)", [(n, describe(n)) for n in ablation_names()]),
    ]


def listing_text() -> str:
    lines = []
    for title, entries in sections():
        lines.append(f"{title}:")
        width = max((len(name) for name, _ in entries), default=0)
        lines.extend(f"  {name.ljust(width)}  {desc}".rstrip() for name, desc in entries)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
