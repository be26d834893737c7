"""The paper's data interventions (Sec. 5): less data, random tokens at fixed positions, a fixed token.

All of them are deterministic functions of (seed, sample index), so a resumed run sees exactly the
same data as an uninterrupted one, with no state to save.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def keep_fraction(n_sequences: int, fraction: float, seed: int) -> np.ndarray:
    """Indices of the training sequences kept when training on `fraction` of the data (sorted).

    The paper keeps the first fraction of its shuffled chunk files; here a seeded random subset of
    max(1, floor(fraction * n)) sequences, fixed for the whole run, which is then repeated over epochs.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"data.fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return np.arange(n_sequences)
    keep = max(1, int(n_sequences * fraction))
    rng = np.random.default_rng([seed, 0x5EED])
    return np.sort(rng.permutation(n_sequences)[:keep])


@dataclass(frozen=True)
class PositionInterventions:
    """Random tokens at positions [random_start, random_end) and/or a fixed token at fixed_position.

    Positions are 0-based positions of the model input (position 0 is the paper's x_1). They apply to the
    packed block of context + 1 tokens, so the changed tokens are both inputs and, one step earlier,
    targets, exactly as rewriting the paper's chunk files does.
    """

    random_start: int | None = None
    random_end: int | None = None
    random_vocab: int = 0  # ids are drawn uniformly from [0, random_vocab): only ids the tokenizer produces
    fixed_position: int | None = None
    fixed_token: int = 0
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.random_start is not None or self.fixed_position is not None

    def apply(self, sequence: np.ndarray, sample: int) -> np.ndarray:
        """A changed copy of one sequence; `sample` (a stable index) seeds the random tokens."""
        if not self.active:
            return sequence
        out = np.array(sequence, copy=True)
        if self.random_start is not None and self.random_end is not None:
            stop = min(self.random_end, len(out))
            if stop > self.random_start:
                rng = np.random.default_rng([self.seed, sample])
                out[self.random_start : stop] = rng.integers(0, self.random_vocab, stop - self.random_start)
        if self.fixed_position is not None and self.fixed_position < len(out):
            out[self.fixed_position] = self.fixed_token
        return out
