"""The streaming sums: intervals against numpy, Sink_k against the measurement record, flat memory."""

from __future__ import annotations

import numpy as np
import torch

from sinklab.ablate.stats import LossStats, SinkCounts, interval, token_losses
from sinklab.measure.metrics import sink_percent, window_alpha
from sinklab.measure.record import AttentionRecord


def test_interval_is_mean_plus_minus_1_96_sd_over_root_n() -> None:
    x = np.array([0.3, -0.1, 0.25, 0.4, 0.05])
    got = interval(float(x.sum()), float((x**2).sum()), len(x))
    half = 1.959964 * x.std(ddof=1) / np.sqrt(len(x))
    np.testing.assert_allclose([got.mean, got.low, got.high], [x.mean(), x.mean() - half, x.mean() + half])
    assert interval(0.2, 0.04, 1).low is None


def _weights(b: int, h: int, t: int, seed: int) -> torch.Tensor:
    scores = torch.randn(b, h, t, t, generator=torch.Generator().manual_seed(seed)) * 2
    return scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)


def test_sink_counts_equal_the_measurement_record() -> None:
    eps, t = [0.1, 0.3], 10
    counts = SinkCounts(eps=eps, positions=4, window=3)
    record = AttentionRecord(analyses=False)
    for batch in range(3):
        for r in (counts, record):
            r.start_batch(2, t)
            for layer in range(2):
                w = _weights(2, 3, t, seed=10 * batch + layer)
                for start in range(0, t, 4):  # causal query blocks hand over only the keys they see
                    r.add_weights(layer, w[:, :, start : start + 4, : start + 4], start)
            r.end_batch()
    alpha = record.result().alpha  # (S, L, H, T)
    for e in eps:
        np.testing.assert_allclose(counts.sink_percent()[f"{e:g}"], sink_percent(alpha, e)[:4])
        windowed = sink_percent(window_alpha(alpha, 3), e)[:4]
        np.testing.assert_allclose(counts.sink_percent(window=True)[f"{e:g}"], windowed)
    np.testing.assert_allclose(counts.mean_alpha(), alpha.mean(0)[..., :4], atol=1e-6)


def test_memory_does_not_grow_with_samples() -> None:
    stats = LossStats(length=8, focus=(3, 7))
    sizes = []
    for n in range(20):
        base = torch.rand(4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
        stats.add(base + 0.1, base)
        sizes.append(sum(v.nbytes for v in vars(stats).values() if isinstance(v, np.ndarray)))
    assert len(set(sizes)) == 1 and stats.n == 80
    np.testing.assert_allclose(stats.delta_interval().mean, 0.1)
    np.testing.assert_allclose(stats.focus_interval().mean, 0.1)


def test_token_losses_are_next_token_cross_entropy() -> None:
    logits = torch.randn(2, 5, 11)
    ids = torch.randint(0, 11, (2, 5))
    got = token_losses(logits, ids)
    p = logits.log_softmax(-1)
    expected = -p[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
    torch.testing.assert_close(got, expected.double())
