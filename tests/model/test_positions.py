"""Positions against hand formulas: sinusoidal layout, ALiBi slopes, T5 buckets, RoPE vs Hugging Face."""

from __future__ import annotations

import math

import pytest
import torch

from sinklab.model.positions import POSITIONS, alibi_slopes, t5_bucket

from .helpers import tiny_config, tiny_model


@pytest.mark.parametrize("name", POSITIONS.names())
def test_every_position_trains_a_step(name):
    model = tiny_model(position=name)
    logits = model(torch.randint(0, 37, (2, 12)))
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_sinusoidal_is_sines_then_cosines():
    cfg = tiny_config(position="sinusoidal", d_model=8, n_head=2)
    emb = POSITIONS.get("sinusoidal")(cfg).embed(torch.arange(5))
    for t in range(5):
        for i in range(4):
            omega = 10000 ** (-2 * i / 8)
            assert emb[t, i].item() == pytest.approx(math.sin(t * omega), abs=1e-6)
            assert emb[t, 4 + i].item() == pytest.approx(math.cos(t * omega), abs=1e-6)


def test_alibi_slopes_follow_press_et_al():
    assert alibi_slopes(8).tolist() == [2.0**-i for i in range(1, 9)]
    assert alibi_slopes(4).tolist() == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8]
    # not a power of two: the 4 slopes of 4 heads, then every other slope of 8 heads
    assert alibi_slopes(6).tolist() == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]
    bias = POSITIONS.get("alibi")(tiny_config(position="alibi", n_head=4)).bias(
        torch.arange(3), torch.arange(3)
    )
    assert bias[0, 2, 0].item() == pytest.approx(-2 * 2.0**-2)


def naive_bucket(n: int) -> int:
    if n < 16:
        return n
    return min(16 + int(math.log(n / 16) / math.log(128 / 16) * 16), 31)


def test_t5_bucket_matches_the_papers_formula():
    dist = torch.arange(0, 400)
    got = t5_bucket(dist).tolist()
    assert got == [naive_bucket(n) for n in range(400)]
    assert t5_bucket(torch.tensor([-3])).item() == 0  # keys after the query (prefix masks)


def test_relative_bucket_adds_the_bucket_itself_and_relative_a_per_head_table():
    cfg = tiny_config(position="relative_bucket")
    bias = POSITIONS.get("relative_bucket")(cfg).bias(torch.arange(40), torch.arange(40))
    assert bias.shape == (4, 40, 40)
    assert bias[2, 39, 0].item() == naive_bucket(39)
    rel = POSITIONS.get("relative")(tiny_config(position="relative"))
    bias = rel.bias(torch.arange(20), torch.arange(20))
    assert bias[1, 19, 2].item() == rel.table.weight[naive_bucket(17), 1].item()


def test_learned_positions_reject_too_long_sequences():
    model = tiny_model(position="learned", context=8)
    with pytest.raises(ValueError, match="context"):
        model(torch.randint(0, 37, (1, 9)))


@pytest.mark.parametrize("length", [10, 40], ids=["within-context", "beyond-context"])
def test_rope_rotates_each_half_pair_by_position_times_frequency(length):
    """Tables (up to the context) and computed angles (beyond it) both rotate the pair (x_i, x_{i+D/2}) of
    position p by p * base^(-2i/D), forward and backward."""
    cfg = tiny_config(context=16)
    rope = POSITIONS.get("rope")(cfg)
    d, half = cfg.head_dim, cfg.head_dim // 2
    x = torch.randn(2, 3, length, d, dtype=torch.float64, requires_grad=True)
    pos = torch.arange(length)
    angle = pos.double().view(-1, 1) * cfg.rope_base ** (-2 * torch.arange(half).double() / d)
    c, s = angle.cos(), angle.sin()
    x1, x2 = x[..., :half], x[..., half:]
    expected = torch.cat((x1 * c - x2 * s, x2 * c + x1 * s), dim=-1)
    out = rope.rotate(x, pos)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)  # the angles are fp32, as in Llama
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, g)
    (expected_grad,) = torch.autograd.grad(expected, x, g)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-6, atol=1e-6)


def test_rope_rotate_qkv_equals_split_then_rotate_forward_and_backward():
    """Rope's one-function split and rotation of the fused projection's heads (GQA: 4 query, 2 kv heads)
    against the generic split and `rotate`, forward and backward, v untouched."""
    from sinklab.model.positions import Position

    cfg = tiny_config(n_kv_head=2)
    rope = POSITIONS.get("rope")(cfg)
    b, t, d = 2, 9, cfg.head_dim
    base = torch.randn(b, t, 4 + 2 * 2, d, dtype=torch.float64, requires_grad=True)
    qkv = base.transpose(1, 2)  # (B, H', T, D), the projection output's view in attention
    pos = torch.arange(t)
    fused = rope.rotate_qkv(qkv, pos, 4, 2)
    generic = Position.rotate_qkv(rope, qkv, pos, 4, 2)
    grads = [torch.randn_like(x) for x in fused]
    for a, c in zip(fused, generic, strict=True):
        torch.testing.assert_close(a, c)
    (got,) = torch.autograd.grad(fused, base, grads, retain_graph=True)
    (expected,) = torch.autograd.grad(generic, base, grads)
    torch.testing.assert_close(got, expected)
    (only_v,) = torch.autograd.grad(fused[2], base, grads[2])  # q and k unused: their gradient is zero
    assert only_v[:, :, :6].abs().max() == 0 and torch.equal(only_v[:, :, 6:], grads[2].transpose(1, 2))
