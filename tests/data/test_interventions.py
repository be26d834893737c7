"""Random tokens at [a, b), a fixed token at p, and the data fraction, position by position."""

from __future__ import annotations

import numpy as np
import pytest

from sinklab.data.evalset import eval_sequences, read_eval_set, write_eval_set
from sinklab.data.interventions import PositionInterventions, keep_fraction
from sinklab.data.packing import PackedSequences, TrainBatches

SEQ = np.arange(100, 109)  # 9 tokens: a context-8 block


def test_random_tokens_only_in_range():
    iv = PositionInterventions(random_start=1, random_end=3, random_vocab=50, seed=3)
    out = iv.apply(SEQ, sample=0)
    assert out[0] == SEQ[0] and np.array_equal(out[3:], SEQ[3:])
    assert np.all(out[1:3] < 50)  # drawn from the tokenizer's ids, never from outside them
    assert np.array_equal(iv.apply(SEQ, 0), out)  # deterministic per sample
    draws = np.stack([iv.apply(SEQ, s)[1:3] for s in range(50)])
    assert len({tuple(d) for d in draws}) > 40  # different for different samples
    assert np.array_equal(SEQ, np.arange(100, 109))  # the input is not modified in place


def test_fixed_token_at_position():
    iv = PositionInterventions(fixed_position=2, fixed_token=7)
    out = iv.apply(SEQ, sample=5)
    expected = SEQ.copy()
    expected[2] = 7
    assert np.array_equal(out, expected)


def test_interventions_reach_inputs_and_targets_of_training_batches():
    iv = PositionInterventions(fixed_position=0, fixed_token=7, random_start=2, random_end=4, random_vocab=5)
    b = TrainBatches.build(
        PackedSequences(np.arange(1000, 1090), context=8), batch_size=3, seed=0, interventions=iv
    )
    batch = b.batch(1)
    inputs, targets = batch[:, :-1], batch[:, 1:]
    assert np.all(inputs[:, 0] == 7)
    assert np.all(inputs[:, 2:4] < 5) and np.all(targets[:, 1:3] < 5)  # position p is target p - 1
    assert np.all(inputs[:, 4:] >= 1000) and np.all(inputs[:, 1] >= 1000)


def test_keep_fraction():
    kept = keep_fraction(100, 0.1, seed=1)
    assert len(kept) == 10 and len(set(kept.tolist())) == 10
    assert np.array_equal(kept, keep_fraction(100, 0.1, seed=1))
    assert len(keep_fraction(5, 0.01, seed=1)) == 1
    with pytest.raises(ValueError, match="fraction"):
        keep_fraction(10, 0.0, seed=1)


def test_eval_set_bos_and_record(tmp_path):
    tokens = np.arange(1, 41)
    plain = eval_sequences(tokens, length=8, samples=5, bos_id=None)
    assert plain.shape == (5, 8) and plain[0].tolist() == list(range(1, 9)) and plain[1, 0] == 9
    with_bos = eval_sequences(tokens, length=8, samples=5, bos_id=99)
    assert np.all(with_bos[:, 0] == 99) and with_bos[0, 1:].tolist() == list(range(1, 8))
    write_eval_set(tmp_path / "eval_set.jsonl", plain)
    assert np.array_equal(read_eval_set(tmp_path / "eval_set.jsonl"), plain)
    with pytest.raises(ValueError, match="eval_samples"):
        eval_sequences(tokens, length=8, samples=6, bos_id=None)
