"""The support matrix (docs/support_matrix.md) is what the check finds: every causal-LM model type of the
installed transformers, built small from its own config class, measured as `sinklab measure` does, its α
within 1e-4 of eager attention maps; the fast part checks one type of each kind, the slow one all of them.
Also: the eager fallback (reason in notes), hybrids (attention layers only, labelled by the model's own
index), attention-free models (one line, exit 2) and ablate's clear error on the fallback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from sinklab.cli import main
from sinklab.measure import hf, hook
from sinklab.measure.support import STATUSES, TOLERANCE, causal_lm_types, check_model_type, shrink_config
from sinklab.observe import BACKEND_EAGER, BACKEND_REGISTRY

MATRIX = Path(__file__).resolve().parents[2] / "docs" / "support_matrix.md"
# One type of each kind: dense, MLA, MoE, chunked and sliding attention, ALiBi on the eager fallback, an
# encoder family's decoder head, hybrids of attention with state-space / linear / recurrent layers, and
# attention-free models.
FAST = (
    "llama",
    "deepseek_v3",
    "mixtral",
    "llama4_text",
    "gemma3_text",
    "granite_swa",
    "bloom",
    "bert",
    "jamba",
    "qwen3_next",
    "recurrent_gemma",
    "mamba",
    "rwkv",
)
WITH_ABLATE = ("llama", "bloom", "jamba")


def published() -> dict[str, tuple[str, str]]:
    """model type -> (status, ablate column) of the committed matrix."""
    rows = {}
    for line in MATRIX.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `([^`]+)` \| ([^|]+) \|[^|]*\|[^|]*\| ([^|]*) \|", line)
        if match:
            rows[match.group(1)] = (match.group(2).strip(), match.group(3).strip())
    return rows


def check_against_matrix(model_type: str, ablate: bool) -> None:
    status, ablate_cell = published()[model_type]
    row = check_model_type(model_type, ablate=ablate)
    assert row.status == status, (row.status, row.reason)
    if status != "not supported":
        assert row.max_delta is not None and row.max_delta <= TOLERANCE
    if ablate and status != "not supported":
        assert row.ablate == ("clear error" if status == "fallback" else "ok"), row.ablate
        assert row.ablate == ablate_cell


@pytest.mark.parametrize("model_type", FAST)
def test_one_type_of_each_kind_is_as_published(model_type: str) -> None:
    check_against_matrix(model_type, ablate=model_type in WITH_ABLATE)


def test_matrix_lists_every_causal_lm_type() -> None:
    import transformers

    text = MATRIX.read_text(encoding="utf-8")
    assert f"(transformers {transformers.__version__})" in text.splitlines()[0]
    rows = published()
    assert set(rows) == set(causal_lm_types())
    assert {status for status, _ in rows.values()} <= set(STATUSES)
    for status, ablate in rows.values():
        if status in ("supported", "attention-only"):
            assert ablate == "ok"
        elif status == "fallback":
            assert ablate == "clear error"


@pytest.mark.slow
@pytest.mark.parametrize("model_type", causal_lm_types())
def test_every_causal_lm_type_is_as_published(model_type: str) -> None:
    check_against_matrix(model_type, ablate=True)


def _folder(model_type: str, path: Path) -> Path:
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(shrink_config(model_type), attn_implementation="eager").save_pretrained(
        path
    )
    return path


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()  # what building the folder wrote
    try:
        rc = main(argv)
    except SystemExit as exit_:
        rc = exit_.code
    return int(rc or 0), capsys.readouterr().err


def test_attention_free_model_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder("mamba", tmp_path / "mamba")
    rc, err = _cli(
        ["measure", "--model", str(folder), "--input", "random", "--out", str(tmp_path / "o")], capsys
    )
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "mamba" in lines[0] and "has no attention layers" in lines[0], err
    assert "Traceback" not in err


def test_hybrid_measures_its_attention_layers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder("jamba", tmp_path / "jamba")
    out = tmp_path / "o"
    argv = ["measure", "--model", str(folder), "--input", "random", "--length", "16", "--samples", "2"]
    rc, err = _cli([*argv, "--no-plots", "--out", str(out)], capsys)
    assert rc == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["attention_layers"] == [1, 3]  # jamba's attention every 2nd layer from 1, of 4
    assert len(metrics["alpha"]) == 2 and metrics["backend"] == BACKEND_REGISTRY
    assert any("hybrid" in n and "1, 3" in n for n in metrics["notes"])
    assert "hybrid" in err


def test_layers_are_labelled_by_the_modules_layer_idx(tmp_path: Path) -> None:
    """A model whose attention modules skip indices: the record is labelled by layer_idx, not call order."""
    net = AutoModelForCausalLM.from_config(shrink_config("llama"), attn_implementation="eager").eval()
    layers = net.model.layers
    for i, layer in enumerate(layers):
        layer.self_attn.layer_idx = 10 + 2 * i
    runner = hf.prepare_hf(net, name="llama")
    assert runner.attention_layers == [10, 12, 14, 16] and runner.backend == BACKEND_REGISTRY


def test_failing_registered_path_falls_back_to_eager(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model whose non-eager path raises is measured on the eager path, and says why (console and notes);
    the numbers are eager's; ablate's attention edits are a clear error there."""
    folder = _folder("llama", tmp_path / "llama")
    ids = torch.randint(3, 300, (2, 16), generator=torch.Generator().manual_seed(0))
    reference = hf.prepare_hf(hf.load_hf_model(str(folder)))
    from sinklab.measure.api import measure_token_ids

    expected = measure_token_ids(reference, ids, batch_size=2)["alpha"]

    def broken(module, *args, **kwargs):
        raise AttributeError("'LlamaAttention' object has no attribute 'something_new'")

    monkeypatch.setattr(hook, "sinklab_attention_forward", broken)
    try:
        runner = hf.prepare_hf(hf.load_hf_model(str(folder)))
        assert runner.backend == BACKEND_EAGER and "something_new" in runner.fallback_reason
        measured = measure_token_ids(runner, ids, batch_size=2)["alpha"]
        np.testing.assert_allclose(measured, expected, atol=1e-5)
        out = tmp_path / "o"
        argv = ["measure", "--model", str(folder), "--input", "random", "--length", "16", "--samples", "2"]
        rc, err = _cli([*argv, "--no-plots", "--out", str(out)], capsys)
        assert rc == 0, err
        assert "eager" in err and "something_new" in err
        notes = json.loads((out / "metrics.json").read_text())["notes"]
        assert any("something_new" in n and "eager" in n for n in notes)
        argv = ["ablate", "--model", str(folder), "--input", "random", "--length", "16", "--samples", "2"]
        rc, err = _cli([*argv, "--ablations", "mask-sink", "--out", str(tmp_path / "a")], capsys)
        assert rc == 2 and "mask-sink" in err and "llama" in err and "Traceback" not in err
    finally:
        monkeypatch.undo()
        hook.register()
