"""The sink-evaluation set: fixed sequences from the validation split, recorded in the run directory.

As in the paper, 100 sequences of 64 tokens with no BOS (unless the run trains with one), the same for
every evaluation of a run so the numbers are comparable. It is written as `eval_set.jsonl` in the
format of `sinklab measure --input ids:FILE.jsonl`, so a measurement can be repeated exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sinklab.data.interventions import PositionInterventions
from sinklab.data.packing import PackedSequences
from sinklab.io import atomic_write_text

# Keys for intervention draws on evaluation data: far above any training sample index.
EVAL_SAMPLE_KEY = 2**48


def eval_sequences(
    tokens: np.ndarray,
    *,
    length: int,
    samples: int,
    bos_id: int | None,
    interventions: PositionInterventions | None = None,
) -> np.ndarray:
    """The first `samples` non-overlapping `length`-token sequences of a validation stream.

    With `bos_id`, each sequence is BOS + (length - 1) stream tokens, as the run trains.
    """
    packed = PackedSequences(tokens, length - 1, bos_id)  # blocks of (length - 1) + 1 tokens
    if len(packed) < samples:
        raise ValueError(
            f"the validation split has {len(tokens)} tokens: only {len(packed)} evaluation sequences of "
            f"{length} tokens, {samples} requested; lower data.eval_samples or data.eval_length, or raise "
            "data.val_fraction"
        )
    rows = [packed[i] for i in range(samples)]
    if interventions is not None:
        rows = [interventions.apply(r, EVAL_SAMPLE_KEY + i) for i, r in enumerate(rows)]
    return np.stack(rows)


def write_eval_set(path: Path, ids: np.ndarray) -> None:
    lines = [json.dumps({"input_ids": [int(t) for t in row]}) for row in ids]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_eval_set(path: Path) -> np.ndarray:
    rows = []
    for i, line in enumerate(Path(path).read_text().splitlines()):
        if line.strip():
            try:
                rows.append(json.loads(line)["input_ids"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{path}:{i + 1}: expected a JSON object with 'input_ids'") from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError(f"{path}: expected one or more sequences of equal length")
    return np.asarray(rows, dtype=np.int64)
