"""The attention-edit extension point of the registered attention function (used by sinklab ablate):
hand-worked masks, and no edit means no change."""

from __future__ import annotations

import torch

from sinklab.measure.hook import edited_mask


def test_edit_removes_keys_and_keeps_rows_that_would_be_empty() -> None:
    keep = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    keep[..., 0] = False  # no query may see key 1
    got = edited_mask(None, keep, causal=True, q_len=4, kv_len=4)[0, 0]
    expected = torch.tensor(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1]], dtype=torch.bool
    )  # query 1 keeps its only key
    assert torch.equal(got, expected)


def test_edit_of_a_sliding_window_and_an_additive_mask() -> None:
    window = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 1]], dtype=torch.bool)[None, None]
    keep = torch.tensor([True, False, True])[None, None, None, :].expand(1, 1, 3, 3)
    got = edited_mask(window, keep, causal=True, q_len=3, kv_len=3)[0, 0]
    assert torch.equal(got, torch.tensor([[1, 0, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.bool))
    # Row 3 saw keys 2 and 3 (window of 2): key 3 is left. Row 2 keeps key 1 only.
    minimum = torch.finfo(torch.float32).min
    additive = torch.zeros(1, 1, 3, 3).masked_fill(~window, minimum)
    out = edited_mask(additive, keep, causal=True, q_len=3, kv_len=3)
    assert out.dtype == torch.float32
    assert torch.equal(
        out[0, 0] > minimum / 2, torch.tensor([[1, 0, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.bool)
    )


def test_per_head_edit_broadcasts_over_heads() -> None:
    keep = torch.ones(1, 2, 3, 3, dtype=torch.bool)
    keep[:, 1, :, 0] = False
    got = edited_mask(None, keep, causal=True, q_len=3, kv_len=3)
    assert got.shape == (1, 2, 3, 3)
    assert torch.equal(got[0, 0], torch.ones(3, 3, dtype=torch.bool).tril())  # head 0 untouched
    assert not got[0, 1, 2, 0] and got[0, 1, 0, 0]  # head 1: key 1 gone, except query 1's own row
