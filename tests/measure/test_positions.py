"""`--positions K`: α_1..α_K from the fused kernel's log-sum-exp equal the full mode on every architecture of
the test matrix (GQA, sliding windows, ...); softcap, sink logits, sinklab's own model and the eager
fallback run the full mode and say so; the model's output is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from sinklab.measure import hf
from sinklab.measure.api import measure
from sinklab.measure.checks import MeasureError
from sinklab.measure.make_tiny import ARCHITECTURES, tiny_config
from sinklab.measure.record import AttentionRecord
from sinklab.observe import BACKEND_EAGER

K = 4
T = 96  # past the 64 whole rows the fast path still recomputes, and past every sliding window (8)
EPS = (0.03, 0.05, 0.06, 0.3)  # around α of near-uniform random heads at T = 96, so Sink_k is not all 0
# Where the shortcut cannot be exact, and the reason the note gives.
FALLBACK = {"gemma2": "logit softcapping", "gpt_oss": "sink logits"}


def _model(model_type: str, folder: Path) -> Path:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(model_type), attn_implementation="eager")
    if model_type == "gpt_oss":
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.sinks.normal_(0.0, 2.0)
    model.save_pretrained(folder)
    return folder


def _ids(samples: int = 3, length: int = T) -> torch.Tensor:
    return torch.randint(3, 300, (samples, length), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("model_type", list(ARCHITECTURES))
def test_fast_path_equals_full_mode(model_type: str, tmp_path: Path) -> None:
    folder = _model(model_type, tmp_path / model_type)
    ids = _ids()
    full = measure(str(folder), ids, eps=EPS, batch_size=2, plots=False)
    fast = measure(str(folder), ids, eps=EPS, batch_size=2, plots=False, positions=K)
    assert fast.alpha.shape == (*full.alpha.shape[:2], K) and fast.positions == K
    np.testing.assert_allclose(fast.alpha, full.alpha[..., :K], atol=1e-5, rtol=0)
    for e in EPS:
        delta = np.abs(np.array(fast.sink_percent_by_eps[e]) - np.array(full.sink_percent_by_eps[e][:K]))
        assert delta.max() <= 1e-4, (e, delta)
    np.testing.assert_allclose(fast.sink_percent_by_layer, full.sink_percent_by_layer[:, :K], atol=1e-4)
    assert (fast.strongest_head["layer"], fast.strongest_head["head"]) == (
        full.strongest_head["layer"],
        full.strongest_head["head"],
    )
    np.testing.assert_allclose(fast.head_map, full.head_map, atol=1e-5)
    for name in ("hidden_norm", "key_norm"):
        if name in full.analyses:
            np.testing.assert_allclose(fast.analyses[name], full.analyses[name], rtol=1e-5)
    if full.window:
        np.testing.assert_allclose(
            fast.window["sink_percent_by_layer"], full.window["sink_percent_by_layer"][:, :K], atol=1e-4
        )
    notes = [n for n in fast.notes if n.startswith(f"--positions {K}")]
    if model_type in FALLBACK:
        assert len(notes) == 1 and FALLBACK[model_type] in notes[0] and "full mode" in notes[0]
    elif fast.backend == BACKEND_EAGER:  # falcon, where transformers routes it past the registry
        assert notes and "eager fallback" in notes[0]
    else:
        assert notes == [], notes


@pytest.mark.parametrize("model_type", ["llama", "mistral", "gpt2", "gpt_neox"])
def test_fast_path_leaves_the_output_unchanged(model_type: str, tmp_path: Path) -> None:
    """The fused kernel is the one SDPA runs on CPU: logits equal the plain model's bit for bit-ish."""
    folder = _model(model_type, tmp_path / model_type)
    ids = _ids(2)
    runner = hf.prepare_hf(hf.load_hf_model(str(folder)))
    runner.positions = K
    record = AttentionRecord(analyses=False)
    record.start_batch(*ids.shape)
    measured = runner.forward(ids, record)
    record.end_batch()
    assert not runner.fast_fallbacks
    plain = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        default = plain(ids, use_cache=False).logits
    torch.testing.assert_close(measured, default, atol=1e-6, rtol=0)


def test_bfloat16_stays_close(tmp_path: Path) -> None:
    folder = _model("llama", tmp_path / "m")
    ids = _ids()
    full = measure(str(folder), ids, eps=EPS, plots=False, dtype="bfloat16")
    fast = measure(str(folder), ids, eps=EPS, plots=False, dtype="bfloat16", positions=K)
    np.testing.assert_allclose(fast.alpha, full.alpha[..., :K], atol=2e-3)


def test_sinklab_model_runs_the_full_mode_and_says_so(tmp_path: Path) -> None:
    from sinklab.model import ModelConfig, SinkLM

    cfg = ModelConfig(vocab_size=320, context=128, n_layer=2, n_head=2, d_model=32, d_ff=64)
    torch.manual_seed(0)
    model = SinkLM(cfg).eval()
    ids = _ids(2, 80)
    full = measure(model, ids, plots=False)
    fast = measure(model, ids, plots=False, positions=2)
    np.testing.assert_allclose(fast.alpha, full.alpha[..., :2], atol=1e-6)
    assert any("sinklab's own model" in n and "full mode" in n for n in fast.notes)


def test_bad_positions_are_clear_errors() -> None:
    # the Python API names its arguments (the CLI its flags)
    with pytest.raises(MeasureError, match=r"positions=65 is past length=64"):
        measure("unused", "random", length=64, positions=65)
    with pytest.raises(MeasureError, match=r"positions must be an integer >= 1"):
        measure("unused", "random", positions=0)
    with pytest.raises(MeasureError, match=r"several length"):
        measure("unused", "random", length=(16, 32), positions=2)


def test_cli_writes_k_positions(tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture) -> None:
    from sinklab.cli import main

    out = tmp_path / "m"
    argv = ["measure", "--model", str(tiny_llama), "--input", "random", "--length", "80", "--samples", "2"]
    assert main([*argv, "--positions", "3", "--no-plots", "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["positions"] == 3 and len(doc["sink_percent"]) == 3
    assert np.array(doc["alpha"]).shape[-1] == 3 and np.array(doc["sink_percent_by_layer"]).shape[-1] == 3
    assert len((out / "sink_percent.csv").read_text().strip().splitlines()) == 1 + 3
    assert "Sink_3=" in capsys.readouterr().out


def test_sliding_window_past_the_whole_rows(tmp_path: Path) -> None:
    """A window longer than the 64 whole rows: queries 65..80 see key 1 through the boolean mask, so the
    log-sum-exp path's masked weights are not all zero."""
    torch.manual_seed(0)
    config = tiny_config("mistral")
    config.sliding_window = 80
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "m")
    ids = _ids()
    full = measure(str(tmp_path / "m"), ids, eps=EPS, plots=False)
    fast = measure(str(tmp_path / "m"), ids, eps=EPS, plots=False, positions=K)
    assert fast.window is not None and fast.window["windowed_layers"]
    np.testing.assert_allclose(fast.alpha, full.alpha[..., :K], atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        fast.window["sink_percent_by_layer"], full.window["sink_percent_by_layer"][:, :K], atol=1e-4
    )
    assert not [n for n in fast.notes if n.startswith("--positions")]
