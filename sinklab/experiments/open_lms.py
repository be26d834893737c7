"""`reproduce --suite open-lms`: the paper's public models measured from the hub, beside the paper's numbers.

Models that cannot be loaded (no network, gated, too large for memory) are listed as skipped, not failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sinklab.io import atomic_write_json, atomic_write_text

# The paper's list (paper.md Sec. 6) and its Table 1 (natural / random / repeated 64-token inputs).
MODELS: tuple[str, ...] = (
    *(f"openai-community/{m}" for m in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")),
    *(
        f"EleutherAI/pythia-{s}"
        for s in ("14m", "31m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")
    ),
    *(f"facebook/opt-{s}" for s in ("125m", "350m", "1.3b", "2.7b", "6.7b", "13b")),
    "meta-llama/Llama-2-7b-hf",
    "meta-llama/Llama-2-7b-chat-hf",
    "meta-llama/Llama-2-13b-hf",
    "meta-llama/Llama-2-13b-chat-hf",
    "meta-llama/Meta-Llama-3-8B",
    "meta-llama/Meta-Llama-3-8B-Instruct",
    "meta-llama/Llama-3.1-8B",
    "meta-llama/Llama-3.1-8B-Instruct",
    "mistralai/Mistral-7B-v0.1",
    "mistralai/Mistral-7B-Instruct-v0.1",
)
PAPER: dict[str, dict[str, float]] = {
    "openai-community/gpt2-xl": {"natural": 77.00, "random": 70.29, "repeat": 62.28},
    "mistralai/Mistral-7B-v0.1": {"natural": 97.49, "random": 75.21, "repeat": 0.00},
    "meta-llama/Llama-2-7b-hf": {"natural": 92.47, "random": 90.13, "repeat": 0.00},
    "meta-llama/Meta-Llama-3-8B": {"natural": 99.02, "random": 91.23, "repeat": 0.00},
    "mistralai/Mistral-7B-Instruct-v0.1": {"natural": 88.34},
    "meta-llama/Llama-2-7b-chat-hf": {"natural": 92.88},
    "meta-llama/Llama-2-13b-hf": {"natural": 91.69},
    "meta-llama/Llama-2-13b-chat-hf": {"natural": 90.94},
    "meta-llama/Meta-Llama-3-8B-Instruct": {"natural": 98.85},
}
# Natural text: the Pile's first 10k documents (the paper sampled its probe texts from the Pile).
INPUTS: dict[str, str] = {"natural": "hf:NeelNanda/pile-10k", "random": "random:0", "repeat": "repeat"}


@dataclass
class OpenLMRow:
    model: str
    values: dict[str, float | None]
    skipped: str | None = None


def measure_open_lms(
    out: Path, models: tuple[str, ...] = MODELS, inputs: dict[str, str] | None = None, samples: int = 100
) -> list[OpenLMRow]:
    """Measure Sink_1 of each model on each input kind; write OUT/open_lms.json and OUT/open_lms.md."""
    from sinklab.measure.api import measure

    inputs = inputs or INPUTS
    rows = []
    for model in models:
        values: dict[str, float | None] = {}
        reason = None
        for kind, spec in inputs.items():
            try:
                result = measure(model, spec, length=64, samples=samples, plots=False)
                values[kind] = result.sink_percent[0]
            except (OSError, ValueError, RuntimeError, MemoryError) as err:  # hub unreachable, gated, too big
                values[kind] = None
                reason = reason or f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
        skipped = reason if all(v is None for v in values.values()) else None
        rows.append(OpenLMRow(model, values, skipped))
    atomic_write_json(out / "open_lms.json", [row.__dict__ for row in rows])
    atomic_write_text(out / "open_lms.md", open_lm_table(rows, list(inputs)))
    return rows


def open_lm_table(rows: list[OpenLMRow], kinds: list[str]) -> str:
    head = "| model | " + " | ".join(f"{k} (ours / paper)" for k in kinds) + " |"
    lines = [head, "|---|" + "---|" * len(kinds)]
    skipped = []
    for row in rows:
        if row.skipped:
            skipped.append(f"- {row.model}: skipped ({row.skipped})")
            continue
        cells = []
        for k in kinds:
            ours = row.values.get(k)
            paper = PAPER.get(row.model, {}).get(k)
            cells.append(
                f"{'–' if ours is None else f'{ours:.2f}'} / {'–' if paper is None else f'{paper:.2f}'}"
            )
        lines.append(f"| {row.model} | " + " | ".join(cells) + " |")
    if skipped:
        lines += ["", "Skipped (could not be loaded here):", *skipped]
    return "\n".join(lines) + "\n"
