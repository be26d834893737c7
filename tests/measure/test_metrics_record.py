"""Hand-worked metric cases and the streaming record against the full-map reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sinklab.measure.metrics import importance_scores, proxy_normalize, sink_percent, summarize_alpha
from sinklab.measure.record import AttentionRecord


def test_divisor_hand_worked() -> None:
    # T = 3. Column sums over queries i >= k, divided by T - k + 1 = 3, 2, 1.
    a = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    np.testing.assert_allclose(importance_scores(a).numpy(), [(1 + 0.5 + 0.2) / 3, (0.5 + 0.3) / 2, 0.5 / 1])


def test_upper_triangle_ignored() -> None:
    a = torch.tensor([[1.0, 9.0], [0.25, 0.75]])
    np.testing.assert_allclose(importance_scores(a).numpy(), [(1 + 0.25) / 2, 0.75])


def test_strict_threshold_and_several_eps() -> None:
    alpha = np.array([[[[0.3, 0.1]], [[0.31, 0.5]]]])  # (S=1, L=2, H=1, T=2)
    assert sink_percent(alpha, 0.3).tolist() == [50.0, 50.0]  # 0.3 is not > 0.3
    assert sink_percent(alpha, 0.05).tolist() == [100.0, 100.0]
    out = summarize_alpha(alpha, [0.3, 0.5])
    assert out["epsilon"] == 0.3
    assert out["sink_percent_by_eps"] == {"0.3": [50.0, 50.0], "0.5": [0.0, 0.0]}
    assert out["sink_percent_by_layer"] == [[0.0, 0.0], [100.0, 100.0]]


def _random_maps(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = shape[-1]
    scores = torch.randn(*shape, generator=gen) * 3
    scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1)


@pytest.mark.parametrize("block", [1, 3, 7, 16])
def test_record_in_query_blocks_equals_reference(block: int) -> None:
    maps = _random_maps((4, 2, 3, 10, 10))  # (S, L, H, T, T)
    rec = AttentionRecord(analyses=False)
    for s0 in (0, 2):
        rec.start_batch(2, 10)
        for layer in range(2):
            for start in range(0, 10, block):
                w = maps[s0 : s0 + 2, layer, :, start : start + block]
                # causal callers may hand over only the keys the block can see
                rec.add_weights(layer, w[..., : min(start + block, 10)], start)
        rec.end_batch()
    res = rec.result()
    np.testing.assert_allclose(res.alpha, importance_scores(maps).numpy(), atol=1e-6)
    assert res.alpha_raw is None and res.slot_alpha is None


def test_raw_vs_proxy_normalisation() -> None:
    gen = torch.Generator().manual_seed(1)
    raw = torch.randn(1, 1, 6, 6, generator=gen).tril()  # signed, rows do not sum to one
    rec = AttentionRecord(analyses=False)
    rec.start_batch(1, 6)
    rec.add_weights(0, raw[..., :3, :], 0, normalized=False)
    rec.add_weights(0, raw[..., 3:, :], 3, normalized=False)
    rec.end_batch()
    res = rec.result()
    proxy = raw.abs() / (raw.abs().sum(-1, keepdim=True) + 1e-8)
    np.testing.assert_allclose(res.alpha[0, 0, 0], importance_scores(proxy)[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(res.alpha_raw[0, 0, 0], importance_scores(raw)[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(proxy_normalize(raw)[0, 0], proxy[0, 0], atol=1e-7)


def test_slot_alpha_hand_worked() -> None:
    # T = 2, slot weights 0.5 and 0.25: (1 + 0.75) / (T + 1)
    rec = AttentionRecord(analyses=False)
    rec.start_batch(1, 2)
    w = torch.tensor([[[[0.5, 0.0], [0.25, 0.5]]]])
    rec.add_weights(0, w, 0, slot=torch.tensor([[[0.5, 0.25]]]))
    rec.end_batch()
    res = rec.result()
    assert res.slot_alpha is not None
    np.testing.assert_allclose(res.slot_alpha[0, 0, 0], (1 + 0.75) / 3)
    np.testing.assert_allclose(res.alpha[0, 0, 0], [(0.5 + 0.25) / 2, 0.5])


def test_angles_and_norms_against_naive_loops() -> None:
    """cos(q_t, k_1) and the mean cos of q_t with keys 2..t, from hook.feed_attention, against plain loops."""
    from sinklab.measure.hook import feed_attention

    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 4, 9, 8, generator=gen) for _ in range(3))
    k, v = k[:, :2], v[:, :2]  # GQA: query head h uses key head h // 2
    ours = AttentionRecord()
    ours.start_batch(2, 9)
    feed_attention(ours, 0, q, k, v, None, scaling=None, query_block=4)
    ours.end_batch()
    b = ours.result()
    cos = torch.nn.functional.cosine_similarity
    first = np.zeros(9)
    other = np.zeros(9)
    for s in range(2):
        for h in range(4):
            for t in range(9):
                first[t] += float(cos(q[s, h, t], k[s, h // 2, 0], dim=0)) / 8
                if t >= 1:
                    other[t] += (
                        np.mean([float(cos(q[s, h, t], k[s, h // 2, j], dim=0)) for j in range(1, t + 1)]) / 8
                    )
    np.testing.assert_allclose(b.cos_first_key[0, 1:], first[1:], atol=1e-5)
    np.testing.assert_allclose(b.cos_other_keys[0, 1:], other[1:], atol=1e-5)
    assert np.isnan(b.cos_first_key[0, 0]) and np.isnan(b.cos_other_keys[0, 0])
    np.testing.assert_allclose(b.key_norm[0], k.norm(dim=-1).mean(dim=(0, 1)).numpy(), atol=1e-5)
    np.testing.assert_allclose(b.value_norm[0], v.norm(dim=-1).mean(dim=(0, 1)).numpy(), atol=1e-5)
    # and the weights equal a naive causal softmax
    scores = (q @ k.repeat_interleave(2, 1).transpose(-1, -2)) / 8**0.5
    naive = scores.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    np.testing.assert_allclose(b.alpha, importance_scores(naive[:, None]).numpy(), atol=1e-6)


def test_strongest_head_map_with_sequences_longer_than_a_query_block(tmp_path) -> None:
    """Causal blocks pass only the keys they see; the head map must still be complete (rows sum to one)
    and its importance scores must equal the recorded alpha of that head (the same two samples)."""
    from sinklab.measure.api import measure
    from sinklab.measure.make_tiny import make_tiny

    folder = make_tiny("llama", tmp_path / "tiny")
    res = measure(str(folder), "random:0", length=40, samples=2, query_block=16, plots=False)
    assert res.head_map is not None and res.strongest_head is not None
    np.testing.assert_allclose(res.head_map.sum(-1), 1.0, atol=1e-5)
    layer, head = res.strongest_head["layer"], res.strongest_head["head"]
    alpha = importance_scores(torch.as_tensor(res.head_map)).numpy()
    np.testing.assert_allclose(alpha, np.asarray(res.alpha)[layer][head], atol=1e-5)


def test_window_alpha_counts_only_the_queries_that_see_the_key():
    """Hand-worked: T = 4, a window of 2 keys. Key 1 is seen by queries 1 and 2 only; plain alpha_1 divides
    its column sum by 4, the window-normalised one by 2 (keys 3 and 4: min(2, T - k + 1) = 2 and 1)."""
    import numpy as np

    from sinklab.measure.metrics import importance_scores, window_alpha

    a = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.9, 0.1, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.3, 0.7]])
    plain = importance_scores(a).numpy()
    np.testing.assert_allclose(plain, [1.9 / 4, 0.6 / 3, 0.8 / 2, 0.7 / 1], rtol=1e-6)
    np.testing.assert_allclose(window_alpha(plain, 2), [1.9 / 2, 0.6 / 2, 0.8 / 2, 0.7 / 1], rtol=1e-6)


def test_every_observer_implements_the_protocol():
    """The model and the HF hook feed any AttentionObserver; each observer sinklab has implements it."""
    from sinklab.ablate.stats import SinkCounts
    from sinklab.measure.observers import HeadMapRecord
    from sinklab.measure.record import AttentionRecord
    from sinklab.observe import AttentionObserver, Observers, WeightsObserver

    observers = (AttentionRecord(), HeadMapRecord(), SinkCounts(eps=(0.3,), positions=4), WeightsObserver())
    for observer in (*observers, Observers(observers)):
        assert isinstance(observer, AttentionObserver), type(observer).__name__
        observer.start_batch(2, 8)
        assert observer.batch_shape == (2, 8)


def test_every_runner_implements_the_protocol():
    """Every command runs a model only through ModelRunner: the HF runner and SinkLM's (the one class for
    sinklab's model) both implement it, edits included."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from sinklab.measure.hf import HFRunner
    from sinklab.model.config import ModelConfig
    from sinklab.model.edits import AttentionEdit
    from sinklab.model.runner import SinkLMRunner
    from sinklab.model.transformer import SinkLM
    from sinklab.observe import ModelRunner

    cfg = LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    hf_runner = HFRunner(LlamaForCausalLM(cfg).eval())
    small = ModelConfig(vocab_size=32, context=8, n_layer=1, n_head=2, d_model=16, d_ff=32)
    own = SinkLMRunner(SinkLM(small))
    ids = torch.randint(0, 32, (1, 6))
    for runner in (hf_runner, own):
        assert isinstance(runner, ModelRunner), type(runner).__name__
        assert runner.forward(ids, None, all_logits=False).shape[0] == 1
        assert runner.can_edit and runner.forward(ids, None, AttentionEdit()).shape == (1, 6, 32)
