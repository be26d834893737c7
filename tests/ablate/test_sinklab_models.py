"""sinklab's own models: a SinkLM with the default options runs as the Hugging Face Llama it exports to (the
same logits), so every ablation applies; other SinkLMs are a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from sinklab.ablate.api import ablate
from sinklab.errors import SinklabError

from .helpers import losses, mask_hooks, remove, write_ids

T = 16


def _tiny(**attention: object):
    from sinklab.model import ModelConfig, SinkLM

    cfg = ModelConfig(vocab_size=320, context=64, n_layer=2, n_head=2, d_model=32, d_ff=64)
    for key, value in attention.items():
        setattr(cfg.attention, key, value)
    torch.manual_seed(0)
    return SinkLM(cfg).eval()


def test_default_sinklm_ablates_like_its_llama_export(tmp_path: Path) -> None:
    from sinklab.measure.make_tiny import byte_tokenizer
    from sinklab.model import save_pretrained
    from sinklab.model.export import export_llama

    model = _tiny()
    run = tmp_path / "run"
    save_pretrained(model, run / "model")
    byte_tokenizer().save_pretrained(run / "tokenizer")
    ids = write_ids(tmp_path / "ids.jsonl", 3, T)
    res = ablate(
        str(run), f"ids:{tmp_path / 'ids.jsonl'}", ["mask-sink", "window"], length=T, samples=3, window=4
    )
    assert res.backend == "registered attention function"
    assert any("exports to" in n for n in res.notes)
    # The unablated loss from SinkLM's own forward, independent of the Llama export.
    with torch.no_grad():
        logits = model(ids)
    own = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    np.testing.assert_allclose(res.baseline.loss, float(own), atol=1e-5)
    # mask-sink against an eager forward of the exported Llama with key 1 masked.
    export_llama(model, tmp_path / "hf")
    ref = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    keep = torch.ones(T, T, dtype=torch.bool)
    keep[1:, 0] = False
    handles = mask_hooks(ref, lambda layer, t: keep)
    masked, _ = losses(ref, ids)
    remove(handles)
    np.testing.assert_allclose(res.row("mask-sink").loss, float(masked.mean()), atol=1e-5)


def test_other_sinklms_are_a_clear_error(tmp_path: Path) -> None:
    from sinklab.model import save_pretrained

    save_pretrained(_tiny(kernel="sigmoid", normalize=False), tmp_path / "m")
    with pytest.raises(SinklabError, match="default options"):
        ablate(str(tmp_path / "m"), "random", ["swap-first"], length=8, samples=1)
