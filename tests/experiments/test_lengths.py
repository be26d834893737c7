"""Sink_1 over evaluation lengths (the paper's Fig. 3) against the full attention maps of one forward."""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from sinklab.data.evalset import write_eval_set
from sinklab.experiments.lengths import CACHE_FILE, sink_by_length
from sinklab.model.config import ModelConfig
from sinklab.model.io import save_pretrained
from sinklab.model.transformer import SinkLM
from sinklab.observe import attention_maps


def make_run(run_dir, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=64, context=32, n_layer=2, n_head=4, d_model=32, d_ff=64)
    model = SinkLM(cfg).eval()
    with torch.no_grad():  # sharpen the scores so that some heads cross the thresholds
        for layer in model.layers:
            layer.self_attn.qkv_weights()[0].mul_(6.0)
    save_pretrained(model, run_dir / "model")
    ids = torch.randint(0, 64, (6, 16))
    write_eval_set(run_dir / "eval_set.jsonl", ids.numpy())
    (run_dir / "metrics.json").write_text("{}")
    return ids


def naive(run_dir, ids: torch.Tensor, length: int, eps: float) -> float:
    """alpha_1 of a prefix of `length` tokens, read off the full-length maps (causal: the prefix attends as
    it does inside the longer sequence): the mean over its queries of the weight on key 1."""
    from sinklab.model.io import load_pretrained

    model = load_pretrained(run_dir / "model").eval()
    with torch.no_grad():
        layers = attention_maps(model, ids)
    alpha = torch.stack([w[:, :, :length, 0].mean(-1) for w, _ in layers], dim=1)  # (S, L, H)
    return float((alpha > eps).double().mean() * 100)


def test_sink_by_length_matches_the_full_maps(tmp_path):
    ids = make_run(tmp_path)
    result = sink_by_length(tmp_path, lengths=(4, 8, 16), eps=(0.2, 0.3, 0.5))
    assert result["lengths"] == [4, 8, 16]
    for eps in (0.2, 0.3, 0.5):
        want = [naive(tmp_path, ids, t, eps) for t in (4, 8, 16)]
        np.testing.assert_allclose(result["sink_1"][f"{eps:g}"], want, atol=1e-9)
    assert len(set(result["sink_1"]["0.3"])) > 1  # the thresholds actually separate heads here


def test_lengths_past_the_evaluation_set_are_dropped_and_the_cache_is_reused(tmp_path):
    make_run(tmp_path)
    first = sink_by_length(tmp_path, lengths=(4, 16, 64), eps=(0.3,))
    assert first["lengths"] == [4, 16]
    cache = tmp_path / CACHE_FILE
    marked = {**json.loads(cache.read_text()), "marker": 1}
    cache.write_text(json.dumps(marked))
    assert sink_by_length(tmp_path, lengths=(4, 16, 64), eps=(0.3,))["marker"] == 1  # read, not measured
    assert "marker" not in sink_by_length(tmp_path, lengths=(4, 8), eps=(0.3,))  # another request
    cache.write_text("{not json")
    assert sink_by_length(tmp_path, lengths=(4, 8), eps=(0.3,))["lengths"] == [4, 8]  # corrupt: measured


def test_an_unfinished_run_has_no_lengths(tmp_path):
    make_run(tmp_path)
    (tmp_path / "metrics.json").unlink()
    assert sink_by_length(tmp_path) is None


def test_a_run_trained_again_in_place_is_measured_again(tmp_path):
    make_run(tmp_path, seed=0)
    first = sink_by_length(tmp_path, lengths=(4, 16), eps=(0.3,))
    os.utime(tmp_path / "model" / "model.safetensors", ns=(0, 0))  # the retrained file is newer
    ids = make_run(tmp_path, seed=1)  # the same directory, another model (a retrain in place)
    again = sink_by_length(tmp_path, lengths=(4, 16), eps=(0.3,))
    assert again["requested"]["model"] != first["requested"]["model"]
    want = [naive(tmp_path, ids, t, 0.3) for t in (4, 16)]
    np.testing.assert_allclose(again["sink_1"]["0.3"], want, atol=1e-9)
    assert again["sink_1"]["0.3"] != first["sink_1"]["0.3"]  # the seeds give different models here
