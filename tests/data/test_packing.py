"""Packing, BOS options, token files and the training order, position by position on hand-made text."""

from __future__ import annotations

import numpy as np
import pytest

from sinklab.data.packing import (
    PackedSequences,
    TrainBatches,
    read_token_file,
    stream_tokens,
    write_token_file,
)
from sinklab.data.tokenizer import TextTokenizer

EOS, BOS, PAD = 90, 91, 92


class _Letters:
    """A hand-checkable tokenizer backend: a..z -> 1..26."""

    def __call__(self, texts, add_special_tokens=False):
        assert add_special_tokens is False
        return {"input_ids": [[ord(c) - 96 for c in t] for t in texts]}


def letters() -> TextTokenizer:
    return TextTokenizer(_Letters(), "letters", EOS, BOS, PAD, 93, "letters")


def stream(docs, bos_per_document=False) -> np.ndarray:
    return np.concatenate(list(stream_tokens(docs, letters(), bos_per_document=bos_per_document)))


def test_documents_joined_with_eos():
    assert stream(["abc", "de"]).tolist() == [1, 2, 3, EOS, 4, 5, EOS]


def test_bos_per_document():
    assert stream(["abc", "de"], True).tolist() == [BOS, 1, 2, 3, EOS, BOS, 4, 5, EOS]


def test_paper_packing_blocks_of_context_plus_one():
    seqs = PackedSequences(stream(["abc", "de"]), context=2)
    # stream 1 2 3 E 4 5 E -> blocks of 3, the trailing partial block is dropped
    assert len(seqs) == 2
    assert seqs[0].tolist() == [1, 2, 3]
    assert seqs[1].tolist() == [EOS, 4, 5]  # a sequence may start anywhere, here on an EOS
    with pytest.raises(IndexError):
        seqs[2]


def test_same_bos_at_position_zero_of_every_sequence():
    seqs = PackedSequences(stream(["abc", "de"]), context=2, bos_id=BOS)
    # BOS + context stream tokens: input = [BOS, x], target = [x, y]; stream tokens are never skipped
    assert [seqs[i].tolist() for i in range(len(seqs))] == [[BOS, 1, 2], [BOS, 3, EOS], [BOS, 4, 5]]


def test_token_file_roundtrip_and_size_check(tmp_path):
    path = tmp_path / "t" / "train.bin"
    tf = write_token_file(path, [np.array([1, 2, 3]), np.array([4])], vocab_size=100, meta={"split": "train"})
    assert tf.tokens.dtype == np.uint16 and tf.tokens.tolist() == [1, 2, 3, 4]
    assert tf.manifest["n_tokens"] == 4 and tf.manifest["split"] == "train"
    big = write_token_file(tmp_path / "big.bin", [np.array([70000])], vocab_size=70001, meta={})
    assert big.tokens.dtype == np.uint32 and big.tokens.tolist() == [70000]
    with path.open("ab") as f:
        f.write(b"\0\0")
    with pytest.raises(ValueError, match="manifest says"):
        read_token_file(path)


def _batches(n=10, batch=4, **kw):
    tokens = np.arange(n * 3)
    return TrainBatches.build(PackedSequences(tokens, context=2), batch_size=batch, seed=7, **kw)


def test_order_is_a_permutation_per_epoch_and_deterministic():
    b = _batches()
    first = [b.order.sequence_index(s) for s in range(10)]
    second = [b.order.sequence_index(s) for s in range(10, 20)]
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert first != second  # reshuffled every epoch
    again = _batches()
    assert np.array_equal(again.batch(5), b.batch(5))  # a pure function of (seed, step): resumable
    assert b.state(5)["consumed_samples"] == 20 and b.state(5)["epoch"] == 2


def test_targets_are_inputs_shifted_by_one():
    b = _batches()
    seq = b.batch(0)[0]
    idx = b.order.sequence_index(0)
    assert seq.tolist() == [3 * idx, 3 * idx + 1, 3 * idx + 2]


def test_ranks_split_the_global_batch():
    b = _batches(batch=4)
    whole = b.batch(3)
    parts = np.concatenate([b.batch(3, rank=r, world=2) for r in range(2)])
    assert np.array_equal(whole, parts)
    with pytest.raises(ValueError, match="divisible"):
        b.batch(0, rank=0, world=3)


def test_fraction_keeps_a_fixed_subset():
    b = _batches(n=10, fraction=0.3)
    assert len(b.order.kept) == 3
    seen = {b.order.sequence_index(s) for s in range(30)}
    assert seen == set(b.order.kept.tolist())


def test_too_little_data_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one sequence"):
        TrainBatches.build(PackedSequences(np.arange(2), context=4), batch_size=1, seed=0)
