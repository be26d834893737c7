"""Every architecture: the registered-function path equals a naive computation from eager maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from sinklab.measure import hf
from sinklab.measure.api import measure_token_ids
from sinklab.measure.make_tiny import ARCHITECTURES, tiny_config
from sinklab.measure.metrics import importance_scores, sink_percent
from sinklab.measure.record import AttentionRecord
from sinklab.observe import BACKEND_EAGER, BACKEND_REGISTRY, observe

EPS = (0.05, 0.1, 0.3)
T = 24  # longer than the sliding windows (8) of Mistral, Gemma2/3 and gpt-oss


def _save(model_type: str, folder: Path) -> Path:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(model_type), attn_implementation="eager")
    if model_type == "gpt_oss":
        with torch.no_grad():  # visible sink logits, so the slot mass is far from zero
            for layer in model.model.layers:
                layer.self_attn.sinks.normal_(0.0, 2.0)
    model.save_pretrained(folder)
    return folder


def _eager_reference(folder: Path, ids: torch.Tensor) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Naive: all maps from eager output_attentions, then the metric on full maps; and the slot mass."""
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(ids, output_attentions=True, use_cache=False)
    maps = torch.stack(out.attentions, dim=1)  # (S, L, H, T, T)
    alpha = importance_scores(maps).numpy()
    slot_mass = (1.0 - maps.double().sum(-1)).sum(-1)  # (S, L, H): sink-logit share summed over queries
    return alpha, slot_mass.numpy(), out.logits


def _record_result(runner, ids, batch_size, analyses, query_block, progress=False):
    record = AttentionRecord(analyses=analyses, query_block=query_block)
    return observe(runner, ids, record, batch_size, progress=progress).result()


@pytest.mark.parametrize("model_type", list(ARCHITECTURES))
def test_registered_path_matches_eager_maps(model_type: str, tmp_path: Path) -> None:
    folder = _save(model_type, tmp_path / model_type)
    ids = torch.randint(3, 300, (3, T), generator=torch.Generator().manual_seed(1))
    ref_alpha, ref_slot, eager_logits = _eager_reference(folder, ids)

    net = hf.load_hf_model(str(folder))
    runner = hf.prepare_hf(net, name=model_type)
    # Which path a model takes is the transformers release's business (Falcon moved to the registry in
    # 5.25); what must hold is that either path gives eager's maps. Falcon may take either.
    assert runner.backend in (BACKEND_REGISTRY, BACKEND_EAGER)
    if model_type != "falcon":
        assert runner.backend == BACKEND_REGISTRY
    result = _record_result(runner, ids, batch_size=2, analyses=True, query_block=7, progress=False)
    np.testing.assert_allclose(result.alpha, ref_alpha, atol=1e-5)
    for e in EPS:
        np.testing.assert_array_equal(sink_percent(result.alpha, e), sink_percent(ref_alpha, e))
    metrics = measure_token_ids(runner, ids, EPS, batch_size=2)
    np.testing.assert_allclose(metrics["sink_percent_by_eps"]["0.05"], sink_percent(ref_alpha, 0.05))
    if model_type == "gpt_oss":
        assert result.slot_alpha is not None
        np.testing.assert_allclose(result.slot_alpha, (1.0 + ref_slot) / (T + 1), atol=1e-5)
        assert ref_slot.mean() > 0.1
    elif runner.backend == BACKEND_REGISTRY:
        assert result.slot_alpha is None
        assert result.key_norm is not None and result.key_norm.shape == (2, T)
    assert result.hidden_norm is not None and result.hidden_norm.shape == (3, T)

    # Measuring does not change the model's output: same logits as the model run without sinklab, while a
    # record is being fed; a measurement projects only the last position.
    record = AttentionRecord(analyses=True)
    record.start_batch(*ids.shape)
    with torch.no_grad():
        measured = runner.forward(ids, record)
        record.end_batch()
        last_only = runner.forward(ids, None, all_logits=False)
        default = AutoModelForCausalLM.from_pretrained(folder).eval()(ids, use_cache=False).logits
    torch.testing.assert_close(measured, default, atol=1e-6, rtol=0)
    torch.testing.assert_close(measured, eager_logits, atol=1e-4, rtol=1e-4)
    assert last_only.shape == (ids.shape[0], 1, default.shape[-1])
    torch.testing.assert_close(last_only, default[:, -1:], atol=1e-6, rtol=0)


def test_forced_eager_fallback_equals_registry(tmp_path: Path) -> None:
    folder = _save("mistral", tmp_path / "m")
    ids = torch.randint(3, 300, (2, T), generator=torch.Generator().manual_seed(2))
    fast = _record_result(hf.prepare_hf(hf.load_hf_model(str(folder))), ids, 2, False, 5, False)
    runner = hf.prepare_hf(hf.load_hf_model(str(folder)), force_eager=True)
    assert runner.backend == BACKEND_EAGER
    slow = _record_result(runner, ids, 2, False, 5, False)
    np.testing.assert_allclose(fast.alpha, slow.alpha, atol=1e-5)


def test_two_measurements_at_once_do_not_share_state(tmp_path: Path) -> None:
    """The registered function's active measurement is per thread: two models measured concurrently give
    exactly what each gives alone."""
    from concurrent.futures import ThreadPoolExecutor

    runners = [hf.prepare_hf(hf.load_hf_model(str(_save(m, tmp_path / m)))) for m in ("llama", "qwen2")]
    ids = torch.randint(3, 300, (4, T), generator=torch.Generator().manual_seed(3))
    alone = [_record_result(r, ids, 1, False, 7, False).alpha for r in runners]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda r: _record_result(r, ids, 1, False, 7, False).alpha, runners))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)
