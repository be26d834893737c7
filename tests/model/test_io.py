"""save_pretrained / load_pretrained round trip and clear errors for broken directories."""

from __future__ import annotations

import json

import pytest
import torch

from sinklab.model import is_sinklab_model_dir, load_pretrained, save_pretrained

from .helpers import tiny_model

IDS = torch.randint(0, 37, (1, 9), generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"position": "alibi", "kv_bias": "k", "kv_bias_value": 2.0},
        {"tie_embeddings": True},
        {"attention": {"kernel": "linear_mlp"}, "kv_bias": "sink_token"},
    ],
)
def test_round_trip_gives_the_same_logits(tmp_path, variant):
    model = tiny_model(**variant).float().eval()
    save_pretrained(model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["format"] == "sinklab" and "version" in meta
    assert is_sinklab_model_dir(tmp_path / "m")
    loaded = load_pretrained(tmp_path / "m")
    with torch.no_grad():
        torch.testing.assert_close(loaded(IDS), model(IDS))


def test_broken_directories_give_clear_errors(tmp_path):
    assert not is_sinklab_model_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a sinklab model directory"):
        load_pretrained(tmp_path)
    save_pretrained(tiny_model().float(), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_pretrained(tmp_path / "m")
    save_pretrained(tiny_model().float(), tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["config"]["n_layer"] = 3
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match its config"):
        load_pretrained(tmp_path / "m")
    meta["config"]["attention"]["kernel"] = "nope"
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"incompatible model config.*accepted"):
        load_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match='"format": "sinklab"'):
        load_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_pretrained(tmp_path / "m")
