"""`sinklab measure` end to end in one pass: metrics.json equals a naive eager computation, and the
strongest head's map, recorded beside the metric, equals the eager maps' corner (no second forward)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from sinklab.measure import api, observers
from sinklab.measure.metrics import importance_scores, proxy_normalize, sink_percent, sink_percent_by_layer

EPS = (0.05, 0.3)
VOCAB = 300


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama (3 layers, 4 heads) saved without a tokenizer, as the benchmark's model is."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    folder = tmp_path_factory.mktemp("llama") / "model"
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return folder


def _ids_file(folder: Path, samples: int, length: int) -> tuple[Path, torch.Tensor]:
    ids = torch.randint(0, VOCAB, (samples, length), generator=torch.Generator().manual_seed(1))
    path = folder / f"ids-{samples}x{length}.jsonl"
    path.write_text("".join(json.dumps({"input_ids": row}) + "\n" for row in ids.tolist()))
    return path, ids


def _eager_maps(folder: Path, ids: torch.Tensor) -> torch.Tensor:
    """(S, L, H, T, T): every map from eager attention with output_attentions."""
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(ids, output_attentions=True, use_cache=False)
    return torch.stack(out.attentions, dim=1)


@pytest.mark.parametrize(
    ("length", "batch_size", "query_block"),
    [(80, 3, 16), (40, 2, 128)],  # T past the map's 64 positions, blocks across it; T within one block
)
def test_metrics_json_and_head_map_equal_eager(
    llama_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    length: int,
    batch_size: int,
    query_block: int,
) -> None:
    ids_path, ids = _ids_file(tmp_path, 7, length)
    passes = []
    observe = api.observe
    monkeypatch.setattr(api, "observe", lambda *a, **k: passes.append(1) or observe(*a, **k))
    out = tmp_path / "out"
    result = api.measure(
        str(llama_folder),
        f"ids:{ids_path}",
        length=length,
        samples=7,
        eps=EPS,
        batch_size=batch_size,
        query_block=query_block,
        out=out,
    )
    assert len(passes) == 1  # the strongest head's map came from the measurement's own pass

    maps = _eager_maps(llama_folder, ids)
    alpha = importance_scores(maps).numpy()  # (S, L, H, T)
    metrics = json.loads((out / "metrics.json").read_text())
    np.testing.assert_allclose(metrics["alpha"], alpha.mean(axis=0), atol=1e-5)
    for e in EPS:
        key = f"{e:g}"
        np.testing.assert_array_equal(metrics["sink_percent_by_eps"][key], sink_percent(alpha, e))
    np.testing.assert_array_equal(metrics["sink_percent"], sink_percent(alpha, EPS[0]))
    np.testing.assert_array_equal(metrics["sink_percent_by_layer"], sink_percent_by_layer(alpha, EPS[0]))
    assert metrics["mean_first_alpha"] == pytest.approx(float(alpha[..., 0].mean()), abs=1e-6)

    first = alpha[..., 0].mean(axis=0)  # (L, H)
    layer, head = np.unravel_index(int(np.argmax(first)), first.shape)
    strongest = metrics["strongest_head"]
    assert (strongest["layer"], strongest["head"], strongest["map_samples"]) == (layer, head, 4)
    corner = min(length, observers.MAP_POSITIONS)
    reference = maps[: observers.MAP_SAMPLES, layer, head, :corner, :corner].double().mean(0).numpy()
    assert result.head_map is not None and result.head_map.shape == (corner, corner)
    np.testing.assert_allclose(result.head_map, reference, atol=1e-6)
    assert (out / "strongest_head_map.png").stat().st_size > 0


def _feed_in_blocks(
    record: observers.HeadMapRecord, weights: torch.Tensor, slot: torch.Tensor | None, block: int
):
    """Hand (B, H, T, T) weights over as a causal caller does: query blocks, only the keys each can see."""
    b, _, t, _ = weights.shape
    record.start_batch(b, t)
    for layer in range(2):
        for start in range(0, t, block):
            stop = min(start + block, t)
            part = slot[:, :, start:stop] if slot is not None else None
            w = weights[:, :, start:stop, :stop] * (layer + 1)
            record.add_weights(layer, w, start, slot=part, normalized=slot is None)
    record.end_batch()


@pytest.mark.parametrize("normalized", [True, False])
def test_head_map_record_keeps_the_first_samples_corner(normalized: bool) -> None:
    """Batches of 3 and 3, 4 map samples (all of the first batch, one of the second), 5 positions of 12,
    blocks of 4 that cross the corner; unnormalised weights are proxy-normalised over their whole row."""
    gen = torch.Generator().manual_seed(0)
    t = 12
    causal = torch.ones(t, t).tril()
    weights = torch.rand(6, 3, t, t, generator=gen) * causal
    slot = None
    if normalized:
        weights = weights / weights.sum(-1, keepdim=True)
    else:
        slot = torch.rand(6, 3, t, generator=gen)
    record = observers.HeadMapRecord(samples=4, positions=5)
    _feed_in_blocks(record, weights[:3], slot[:3] if slot is not None else None, 4)
    _feed_in_blocks(record, weights[3:], slot[3:] if slot is not None else None, 4)
    assert record.count == 4
    for layer in range(2):
        scaled = weights[:4] * (layer + 1)
        full = scaled if normalized else proxy_normalize(scaled, slot[:4])
        expected = full[:, 2, :5, :5].double().mean(0).numpy()
        np.testing.assert_allclose(record.mean_map(layer, 2), expected, atol=1e-6)


def test_head_map_record_wants_no_layer_after_its_samples() -> None:
    record = observers.HeadMapRecord(samples=2)
    record.start_batch(2, 8)
    assert record.wants_layer(0)
    record.end_batch()
    record.start_batch(2, 8)
    assert not record.wants_layer(0)  # the later batches compute no weights for the map
