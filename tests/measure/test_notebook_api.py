"""The Python API a notebook user meets: short reprs, figures, tables, float ε keys, token ids as input,
errors in Python names, keyword typos answered, and the caller's model returned exactly as it came."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

import sinklab
from sinklab.errors import SinklabError
from sinklab.measure.caller import KeywordError
from sinklab.measure.make_tiny import tiny_config

T, N = 8, 3


@pytest.fixture(scope="module")
def result(tiny_llama: Path):
    return sinklab.measure_model(str(tiny_llama), "random", length=T, samples=N)


def test_short_repr_and_html(result) -> None:
    text = repr(result)
    assert len(text) < 300 and text.startswith("MeasureResult(") and "Sink_1=" in text and "T=8" in text
    html = result._repr_html_()
    assert html.startswith("<div>") and "Sink_1" in html and len(html) < 5000
    ablated = sinklab.ablate_model(result.model, "random", ["mask-sink"], length=T, samples=N)
    assert len(repr(ablated)) < 300 and "mask-sink: Δ" in repr(ablated)
    assert "<pre" in ablated._repr_html_()


def test_arrays_and_float_eps_keys(result, tmp_path: Path) -> None:
    assert isinstance(result.alpha, np.ndarray) and result.alpha.shape[2] == T
    assert isinstance(result.sink_percent_by_layer, np.ndarray)
    assert isinstance(result.analyses["hidden_norm"], np.ndarray)
    assert list(result.sink_percent_by_eps) == [0.3]
    assert result.sink_percent_by_eps[0.3] == result.sink_percent_by_eps["0.3"] == result.sink_percent
    doc = result.to_dict()
    assert list(doc["sink_percent_by_eps"]) == ["0.3"] and isinstance(doc["alpha"], list)
    json.dumps(doc)  # plain JSON


def test_plot_figures_and_tables(result) -> None:
    from matplotlib.figure import Figure

    figs = result.figures()
    assert set(figs) == {
        "alpha_first_heatmap.png",
        "sink_positions.png",
        "strongest_head_map.png",
        "norms.png",
    }
    assert isinstance(result.plot("sink"), Figure)
    with pytest.raises(ValueError, match="did you mean 'norms'"):
        result.plot("norm")
    heads = result.to_dataframe("heads")
    assert list(heads.columns[:3]) == ["layer", "head", "alpha_1"] and len(heads) == result.alpha.shape[0] * 4
    assert result.to_dataframe().shape[0] == T
    assert result.table("layers")["layer"].tolist() == [0, 1]


def test_to_dataframe_without_pandas(result, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="table"):
        result.to_dataframe()


def test_token_ids_as_input(tiny_llama: Path, tmp_path: Path) -> None:
    ids = torch.randint(3, 250, (N, T), generator=torch.Generator().manual_seed(3))
    (tmp_path / "ids.jsonl").write_text("".join(json.dumps({"input_ids": r}) + "\n" for r in ids.tolist()))
    from_file = sinklab.measure_model(str(tiny_llama), f"ids:{tmp_path / 'ids.jsonl'}", length=T, samples=N)
    for given in (ids, ids.tolist(), ids.numpy()):
        r = sinklab.measure_model(str(tiny_llama), given)  # length and samples from the shape
        assert (r.length, r.samples) == (T, N) and r.input == f"token ids ({N}, {T}) from Python"
        np.testing.assert_allclose(r.alpha, from_file.alpha, atol=1e-7)
    one = sinklab.measure_model(str(tiny_llama), ids[0], analyses=False)
    assert one.samples == 1
    with pytest.raises(SinklabError, match="integers"):
        sinklab.measure_model(str(tiny_llama), torch.rand(2, 8))
    with pytest.raises(SinklabError, match="length=16 is longer than the token ids"):
        sinklab.measure_model(str(tiny_llama), ids, length=16)


def test_errors_name_python_arguments(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="batch_size") as err:
        sinklab.measure_model(str(tiny_llama), "random", batch_size=0)
    assert "--" not in str(err.value)
    text = tmp_path / "docs.txt"
    text.write_text("hello world\n")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    with pytest.raises(SinklabError) as err:
        sinklab.measure_model(model, f"text:{text}", length=4, samples=1)
    assert "pass tokenizer" in str(err.value) and "--tokenizer" not in str(err.value)
    # The command line keeps its flags.
    from sinklab.cli import main

    argv = ["measure", "--model", str(tiny_llama), "--batch-size", "0", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--batch-size" in capsys.readouterr().err


def test_keyword_typos_name_the_accepted_ones(tiny_llama: Path) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'lenght'; did you mean 'length'"):
        sinklab.measure_model(str(tiny_llama), "random", lenght=8)
    with pytest.raises(KeywordError, match="did you mean 'massive_layer'"):
        sinklab.ablate_model(str(tiny_llama), "random", massive_layers=2)


def _state(model: torch.nn.Module) -> dict:
    return {
        "attn": model.config._attn_implementation,
        "training": [m.training for m in model.modules()],
        "devices": [str(p.device) for p in model.parameters()],
        "dtypes": [p.dtype for p in [*model.parameters(), *model.buffers()]],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
        "params": {k: v.clone() for k, v in model.state_dict().items()},
        "ids": [id(p) for p in model.parameters()],
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_callers_model_comes_back_as_it_came(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("llama"), attn_implementation="sdpa").to(dtype)
    model.train()
    model.model.layers[1].eval()  # a mixed training state is kept module by module
    before = _state(model)
    sinklab.measure_model(model, "random", length=T, samples=2)
    sinklab.ablate_model(model, "random", ["mask-sink", "massive-zero"], length=T, samples=2)
    after = _state(model)
    for key in ("attn", "training", "devices", "dtypes", "hooks", "ids"):
        assert after[key] == before[key], key
    for name, value in before["params"].items():
        assert torch.equal(after["params"][name], value), name
    assert before["attn"] == "sdpa" and before["hooks"] == 0


def test_a_sinklab_model_comes_back_in_training_mode() -> None:
    from sinklab.model import ModelConfig, SinkLM

    model = SinkLM(ModelConfig(vocab_size=64, context=16, n_layer=1, n_head=2, d_model=16, d_ff=32)).train()
    sinklab.measure_model(model, "random", length=8, samples=2)
    assert all(m.training for m in model.modules())
