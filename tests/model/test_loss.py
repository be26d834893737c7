"""The fused head + loss against the plain way: lm_head logits, then autograd through cross-entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sinklab.model import ModelConfig, SinkLM
from sinklab.model import loss as fused
from sinklab.model.config import AttentionConfig
from sinklab.train.evaluate import masked_loss, target_mask, training_loss


def _plain(hidden, weight, targets, mask):
    """Per-position cross-entropy of the logits, averaged over the kept targets (the definition)."""
    logits = hidden @ weight.t()
    per = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(targets.shape)
    return (per * mask).sum() / (mask.sum() * targets.shape[0])


@pytest.mark.parametrize("rows_per_chunk", [5, 7, 64])  # chunks that do and do not divide the rows
@pytest.mark.parametrize("kept", ["all", "prefix"])
def test_value_and_gradients_equal_the_plain_loss(monkeypatch, rows_per_chunk, kept):
    monkeypatch.setattr(fused, "chunk_rows", lambda vocab, device: rows_per_chunk)
    torch.manual_seed(0)
    hidden = torch.randn(3, 9, 16, requires_grad=True)
    weight = (torch.randn(40, 16) * 0.7).requires_grad_()
    targets = torch.randint(0, 40, (3, 9))
    mask = torch.ones(9, dtype=torch.bool) if kept == "all" else torch.arange(9) >= 3
    loss = fused.head_cross_entropy(hidden, weight, targets, mask)
    ref = _plain(hidden, weight, targets, mask)
    torch.testing.assert_close(loss, ref)
    grads = torch.autograd.grad(2.5 * loss, (hidden, weight))
    ref_grads = torch.autograd.grad(2.5 * ref, (hidden, weight))
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want)
    # positions the mask drops get no gradient at all
    if kept == "prefix":
        assert grads[0][:, :3].abs().max() == 0


def test_without_grad_only_the_loss_is_computed():
    torch.manual_seed(1)
    hidden, weight = torch.randn(2, 5, 8), torch.randn(30, 8)
    targets, mask = torch.randint(0, 30, (2, 5)), torch.ones(5, dtype=torch.bool)
    with torch.no_grad():
        loss = fused.head_cross_entropy(hidden, weight, targets, mask)
    torch.testing.assert_close(loss, _plain(hidden, weight, targets, mask))
    assert not loss.requires_grad


def test_large_logits_stay_finite():
    """The max is subtracted per row, so logits in the hundreds neither overflow nor lose the loss."""
    hidden = torch.full((1, 2, 4), 50.0, requires_grad=True)
    weight = torch.tensor([[1.0] * 4, [-1.0] * 4, [0.5] * 4])
    loss = fused.head_cross_entropy(hidden, weight, torch.tensor([[0, 1]]), torch.ones(2, dtype=torch.bool))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(200.0, rel=1e-6)  # one target 400 below
    loss.backward()
    assert torch.isfinite(hidden.grad).all()


@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {"tie_embeddings": True},  # the head's gradient joins the embedding's
        {"kv_bias": "sink_token"},  # the sink token's row is cut before the head
        {"attention": AttentionConfig(mask="prefix", prefix=3)},
    ],
    ids=["default", "tied", "sink-token", "prefix-lm"],
)
def test_the_model_returns_the_same_loss_and_gradients_as_its_logits_do(cfg):
    torch.manual_seed(0)
    model = SinkLM(ModelConfig(vocab_size=50, context=16, n_layer=2, n_head=2, d_model=16, d_ff=32, **cfg))
    batch = torch.randint(0, 50, (3, 9))
    mask = target_mask(model, 8)
    loss = training_loss(model, batch, mask)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    ref = masked_loss(model(batch[:, :-1]), batch[:, 1:], mask)
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    torch.testing.assert_close(loss, ref)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_under_bfloat16_autocast_the_loss_is_close_and_fp32():
    torch.manual_seed(0)
    model = SinkLM(ModelConfig(vocab_size=50, context=16, n_layer=1, n_head=2, d_model=16, d_ff=32))
    batch = torch.randint(0, 50, (2, 9))
    mask = target_mask(model, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = training_loss(model, batch, mask)
        ref = masked_loss(model(batch[:, :-1]), batch[:, 1:], mask)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref.item(), abs=2e-2)
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == p.dtype for p in model.parameters())


def test_targets_without_a_mask_are_refused():
    model = SinkLM(ModelConfig(vocab_size=50, context=16, n_layer=1, n_head=2, d_model=16, d_ff=32))
    with pytest.raises(ValueError, match="target_mask"):
        model(torch.zeros(1, 4, dtype=torch.long), targets=torch.zeros(1, 4, dtype=torch.long))


def test_chunks_hold_a_few_mb_of_logits_on_a_cpu_and_more_elsewhere():
    assert fused.chunk_rows(2048) == 512 and fused.chunk_rows(1 << 20) == fused.MIN_CHUNK_ROWS
    assert fused.chunk_rows(32768, "cuda") == 2048
