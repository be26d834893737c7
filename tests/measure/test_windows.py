"""Sliding / chunked windows in `measure`: each layer's window in metrics.json and the summary, the
window-normalised Sink_k beside the paper's (checked against an eager forward's maps), and the windowed
layers marked in the per-layer figure."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

import sinklab
from sinklab.measure.make_tiny import make_tiny
from sinklab.measure.metrics import key_divisors, sink_percent
from sinklab.measure.outputs import summary
from sinklab.measure.windows import CHUNKED, FULL, SLIDING, LayerWindow, layer_windows

T, SAMPLES = 16, 3


def _ids(path: Path) -> torch.Tensor:
    ids = torch.randint(3, 300, (SAMPLES, T), generator=torch.Generator().manual_seed(2))
    path.write_text("".join(json.dumps({"input_ids": r}) + "\n" for r in ids.tolist()))
    return ids


def test_layer_windows_from_configs() -> None:
    cfg = SimpleNamespace(sliding_window=8, layer_types=["sliding_attention", "full_attention"])
    assert layer_windows(cfg, 2) == [LayerWindow(SLIDING, 8), LayerWindow(FULL)]
    cfg = SimpleNamespace(attention_chunk_size=4, layer_types=["chunked_attention", "full_attention"])
    assert layer_windows(cfg, 2)[0] == LayerWindow(CHUNKED, 4)
    assert layer_windows(SimpleNamespace(sliding_window=8), 3) == [LayerWindow(SLIDING, 8)] * 3  # Mistral
    qwen = SimpleNamespace(sliding_window=8, use_sliding_window=False)
    assert layer_windows(qwen, 2) == [LayerWindow(FULL)] * 2
    # queries that see key k: a window of 4 at T = 6; chunks of 4 (keys 1-4, 5-6)
    assert LayerWindow(SLIDING, 4).visible(6).tolist() == [4, 4, 4, 3, 2, 1]
    assert LayerWindow(CHUNKED, 4).visible(6).tolist() == [4, 3, 2, 1, 2, 1]


def test_measure_reports_windows_and_the_normalised_sink(tmp_path: Path) -> None:
    folder = make_tiny("gemma2", tmp_path / "gemma2", seed=0, layers=4)  # sliding w = 8 in layers 0, 2
    ids = _ids(tmp_path / "ids.jsonl")
    result = sinklab.measure_model(
        str(folder),
        f"ids:{tmp_path / 'ids.jsonl'}",
        length=T,
        samples=SAMPLES,
        eps=(0.1, 0.2),
        out=tmp_path / "out",
    )
    w = result.window
    assert w["layers"] == [8, None, 8, None] and w["kind"] == ["sliding", "full", "sliding", "full"]
    assert w["windowed_layers"] == [0, 2]
    ref = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        maps = torch.stack(ref(ids, output_attentions=True).attentions, dim=1)  # (S, L, H, T, T)
    colsum = torch.tril(maps.float()).sum(dim=-2).numpy()  # (S, L, H, T)
    plain = key_divisors(T).numpy()
    visible = np.stack([np.minimum(plain, 8), plain, np.minimum(plain, 8), plain])
    normed = colsum / visible[None, :, None, :]
    for e in ("0.1", "0.2"):
        np.testing.assert_allclose(w["sink_percent_by_eps"][e], sink_percent(normed, float(e)), atol=1e-9)
        np.testing.assert_allclose(
            result.sink_percent_by_eps[e], sink_percent(colsum / plain, float(e)), atol=1e-9
        )
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["window"]["layers"] == [8, None, 8, None]
    assert written["window"]["sink_percent"] == pytest.approx(w["sink_percent"])
    line = next(x for x in summary(result).splitlines() if x.startswith("windowed layers"))
    assert "0, 2" in line and "w = 8" in line and "window-normalised Sink_1" in line


def test_full_attention_models_have_no_window_section(tiny_llama: Path, tmp_path: Path) -> None:
    result = sinklab.measure_model(str(tiny_llama), "random", length=8, samples=2, out=tmp_path)
    assert result.window is None
    assert "window" not in json.loads((tmp_path / "metrics.json").read_text())
    assert "windowed" not in summary(result)


def test_the_figure_marks_windowed_layers() -> None:
    from sinklab.plots import alpha_heatmap

    fig = alpha_heatmap(np.zeros((4, 2)), marks={0: "w=8", 2: "w=8"})
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("w=8") == 2 and "windowed" in texts
