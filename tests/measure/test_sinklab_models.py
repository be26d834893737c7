"""sinklab's own models: model dir, run dir, checkpoint dir; and measure_token_ids for training eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch


def _tiny(position: str = "rope", **attention: object):
    from sinklab.model import ModelConfig, SinkLM

    cfg = ModelConfig(vocab_size=320, context=64, n_layer=2, n_head=2, d_model=32, d_ff=64, position=position)
    for key, value in attention.items():
        setattr(cfg.attention, key, value)
    torch.manual_seed(0)
    return SinkLM(cfg).eval()


def test_measure_token_ids_on_sinklab_model_matches_transformers_eager_maps(tmp_path: Path) -> None:
    """Independent reference: the same weights exported to a transformers Llama, whose eager attention
    returns every full map; alpha from those maps must equal what the streaming record measured."""
    from transformers import AutoModelForCausalLM

    from sinklab.measure.api import measure_token_ids
    from sinklab.measure.metrics import importance_scores, sink_percent
    from sinklab.model.export import export_llama

    model = _tiny()
    ids = torch.randint(0, 320, (3, 16), generator=torch.Generator().manual_seed(0))
    model.train()
    m = measure_token_ids(model, ids, (0.3, 0.1), batch_size=2)
    assert model.training  # restored for the training loop
    assert m["backend"] == "sinklab model record" and m["samples"] == 3 and m["length"] == 16
    alpha = np.array(m["alpha"])  # (L, H, T), mean over samples
    assert alpha.shape == (2, 2, 16)

    export_llama(model, tmp_path / "llama")
    llama = AutoModelForCausalLM.from_pretrained(tmp_path / "llama", attn_implementation="eager").eval()
    with torch.no_grad():
        maps = torch.stack(llama(ids, output_attentions=True).attentions, dim=1)  # (S, L, H, T, T)
    reference = importance_scores(maps)  # (S, L, H, T)
    np.testing.assert_allclose(alpha, reference.mean(0).numpy(), atol=1e-5)
    for eps in (0.3, 0.1):
        np.testing.assert_allclose(m["sink_percent_by_eps"][f"{eps:g}"], sink_percent(reference, eps))


def test_run_dir_and_checkpoint_dir(tmp_path: Path) -> None:
    from sinklab.measure.api import measure
    from sinklab.measure.make_tiny import byte_tokenizer
    from sinklab.model import save_pretrained

    model = _tiny()
    run = tmp_path / "run"
    save_pretrained(model, run / "model")
    save_pretrained(model, run / "checkpoints" / "step_0000010" / "model")
    byte_tokenizer().save_pretrained(run / "tokenizer")
    docs = tmp_path / "d.txt"
    docs.write_text("the quick brown fox jumps over the lazy dog\n" * 3)
    a = measure(str(run), f"text:{docs}", length=8, samples=3, batch_size=2, out=tmp_path / "o", plots=False)
    b = measure(str(run / "model"), "random", length=8, samples=2, plots=False)
    c = measure(str(run / "checkpoints" / "step_0000010"), f"text:{docs}", length=8, samples=3, plots=False)
    assert a.backend == b.backend == "sinklab model record"
    assert a.sink_percent == c.sink_percent
    np.testing.assert_allclose(a.alpha, c.alpha, atol=1e-6)
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["samples"] == 3
    assert a.analyses["hidden_norm"] is not None


def test_corrupt_sinklab_dir_is_a_clear_error(tmp_path: Path) -> None:
    from sinklab.measure.load import load_model
    from sinklab.model import save_pretrained

    save_pretrained(_tiny(), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="corrupt"):
        load_model(str(tmp_path / "m"), device="cpu")


def test_length_against_a_sinklab_models_context(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Learned positions end at model.context (an error before measuring); RoPE runs past it (a warning)."""
    from sinklab.measure.api import measure
    from sinklab.measure.checks import MeasureError
    from sinklab.model import save_pretrained

    save_pretrained(_tiny("learned"), tmp_path / "learned")
    assert measure(str(tmp_path / "learned"), "random", length=64, samples=1, plots=False).length == 64
    with pytest.raises(MeasureError, match=r"model\.context=64"):
        measure(str(tmp_path / "learned"), "random", length=65, samples=1, plots=False)
    save_pretrained(_tiny("rope"), tmp_path / "rope")
    res = measure(str(tmp_path / "rope"), "random", length=72, samples=1, plots=False)
    assert res.length == 72 and any("model.context=64" in n for n in res.notes)
    assert "warning" in capsys.readouterr().err
