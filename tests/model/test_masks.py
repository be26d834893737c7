"""Masks position by position, causality by gradients, the prefix block bidirectional, loss masks."""

from __future__ import annotations

import pytest
import torch

from sinklab.model import AttentionConfig
from sinklab.model.masks import MASKS
from sinklab.observe import attention_maps

from .helpers import tiny_model

MASK_OPTIONS = {"causal": {}, "window": {"window": 3}, "prefix": {"prefix": 4}}


def test_every_mask_has_options_here():
    assert set(MASKS.names()) == set(MASK_OPTIONS)


def expected_allowed(name: str, i: int, j: int) -> bool:
    if name == "causal":
        return j <= i
    if name == "window":  # w = 3 keys including itself
        return i - 3 < j <= i
    return j <= i or j < 4  # prefix p = 4


@pytest.mark.parametrize("name", MASKS.names())
def test_mask_position_by_position(name):
    mask = MASKS.get(name)(AttentionConfig(mask=name, **MASK_OPTIONS[name]))
    t = 9
    got = mask.allowed(torch.arange(t), torch.arange(t))
    for i in range(t):
        for j in range(t):
            assert bool(got[i, j]) == expected_allowed(name, i, j), (i, j)
    # the window keeps exactly w keys once enough tokens precede the query
    if name == "window":
        assert got.sum(-1).tolist() == [1, 2, 3, 3, 3, 3, 3, 3, 3]


@pytest.mark.parametrize("name", MASKS.names())
@pytest.mark.parametrize("kernel", ["softmax", "sigmoid", "linear_elu"])
def test_weights_zero_outside_the_mask(name, kernel):
    model = tiny_model(attention={"mask": name, "kernel": kernel, **MASK_OPTIONS[name]})
    maps = attention_maps(model, torch.randint(0, 37, (1, 9)))
    w = maps[0][0][0, 0]
    for i in range(9):
        for j in range(9):
            if not expected_allowed(name, i, j):
                assert w[i, j] == 0, (i, j)
            elif kernel == "softmax":
                assert w[i, j] > 0


def input_gradients(model, t: int, position: int) -> torch.Tensor:
    """|d logits[position] / d embedding[j]| summed over dims, for every j."""
    ids = torch.randint(0, 37, (1, t))
    emb = model.embed_tokens(ids).detach().requires_grad_(True)
    model.embed_tokens.forward = lambda _ids, emb=emb: emb  # feed the leaf tensor through the model
    logits = model(ids)
    logits[0, position].sum().backward()
    return emb.grad[0].abs().sum(-1)


@pytest.mark.parametrize("name", ["causal", "window"])
@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"kernel": "sigmoid"},
        {"kernel": "linear_identity"},
        {"kernel": "sink_logit"},
        {"position": "alibi"},
        {"kv_bias": "kv"},
        {"kv_bias": "sink_token"},
    ],
)
@pytest.mark.parametrize("backend", ["auto", "blockwise"])
def test_causal_masks_are_causal_by_gradients(name, variant, backend):
    attention = {"mask": name, **MASK_OPTIONS[name], "backend": backend, "block_size": 4}
    for key in ("kernel",):
        if key in variant:
            attention[key] = variant[key]
    model_kw = {k: v for k, v in variant.items() if k != "kernel"}
    model = tiny_model(attention=attention, **model_kw)
    t = 10
    for i in (0, 4, 9):
        grad = input_gradients(model, t, i)
        assert torch.all(grad[i + 1 :] == 0), (i, grad)
        assert grad[i] > 0
        if name == "window" and i >= 3 * 2:
            # two layers of a 3-key window: information travels at most 2 * (3 - 1) tokens back
            assert torch.all(grad[: i - 4] == 0), (i, grad)


@pytest.mark.parametrize("backend", ["auto", "blockwise"])
def test_prefix_block_is_bidirectional_and_rest_causal(backend):
    model = tiny_model(attention={"mask": "prefix", "prefix": 4, "backend": backend, "block_size": 3})
    t = 10
    for i in range(t):
        grad = input_gradients(model, t, i)
        stop = max(i, 3)
        assert torch.all(grad[stop + 1 :] == 0), (i, grad)
        assert torch.all(grad[: stop + 1] > 0), (i, grad)


def test_loss_masks():
    assert tiny_model().loss_mask(6).tolist() == [False, True, True, True, True, True]
    prefix = tiny_model(attention={"mask": "prefix", "prefix": 3})
    # targets 1..p-1 lie inside the prefix and are dropped; token p is the first counted target
    assert prefix.loss_mask(6).tolist() == [False, False, False, True, True, True]
    window = tiny_model(attention={"mask": "window", "window": 2})
    assert window.loss_mask(4).tolist() == [False, True, True, True]
