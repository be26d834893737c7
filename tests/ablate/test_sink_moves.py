"""Where the sink goes: a hand-built Llama whose every head attends to token 1 (score 4.0 x 4.0 x 1.0) and,
less, to token 2 (x 0.8); masking key 1 moves the sink to key 2. Every ablation row reports its largest
Sink_k and its k, in ablations.json, the CSV, the console, the HTML and the figure."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import sinklab
from sinklab.ablate.outputs import summary
from sinklab.measure.make_tiny import tiny_config
from sinklab.plots import ablation_deltas

CONST, SINK = 5, 9  # embedding dims: one every token has (the queries read it), one only tokens 0 and 1 have
T, SAMPLES = 16, 4


def build_two_sink_model() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = tiny_config("llama", layers=2)
    cfg.rope_theta = 1e9  # the signal sits in the slowest rotary pair: no rotation over 16 positions
    if isinstance(getattr(cfg, "rope_parameters", None), dict):
        cfg.rope_parameters["rope_theta"] = 1e9
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb.normal_(0, 0.1)
        emb[:, CONST], emb[:, SINK] = 1.0, 0.0
        emb[0, SINK], emb[1, SINK] = 1.0, 0.8
        for block in model.model.layers:
            attn = block.self_attn
            attn.q_proj.weight.zero_()
            attn.k_proj.weight.zero_()
            for h in range(cfg.num_attention_heads):
                attn.q_proj.weight[h * head_dim + head_dim - 1, CONST] = 4.0
            for h in range(cfg.num_key_value_heads):
                attn.k_proj.weight[h * head_dim + head_dim - 1, SINK] = 4.0
    return model.eval()


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("moves")
    build_two_sink_model().save_pretrained(folder / "model")
    ids = torch.randint(3, 300, (SAMPLES, T), generator=torch.Generator().manual_seed(1))
    ids[:, 0], ids[:, 1] = 0, 1
    (folder / "ids.jsonl").write_text("".join(json.dumps({"input_ids": r}) + "\n" for r in ids.tolist()))
    result = sinklab.ablate_model(
        str(folder / "model"),
        f"ids:{folder / 'ids.jsonl'}",
        ["mask-sink", "sink-value-zero"],
        length=T,
        samples=SAMPLES,
        out=folder / "out",
    )
    return result, folder / "out"


def test_mask_sink_moves_the_sink_to_the_next_token(moved) -> None:
    result, out = moved
    assert result.baseline.sink_top == {"k": 1, "percent": 100.0, "eps": 0.3}
    row = result.row("mask-sink")
    assert row.sink_percent["0.3"][0] == 0.0
    assert row.sink_top == {"k": 2, "percent": 100.0, "eps": 0.3}
    assert len(row.sink_percent["0.3"]) == 5  # k = 1..4, and 4 past the masked position 1
    data = json.loads((out / "ablations.json").read_text())
    assert data["ablations"][0]["sink_top"]["k"] == 2
    table = list(csv.DictReader((out / "ablations.csv").read_text().splitlines()))
    assert [r["largest_sink_k"] for r in table[:2]] == ["1", "2"]


def test_console_html_and_figure_show_where_the_sink_went(moved) -> None:
    result, out = moved
    line = next(x for x in summary(result).splitlines() if x.startswith("mask-sink"))
    assert "0.00%" in line and "Sink_2=100.00%" in line
    html = (out / "report.html").read_text()
    assert "<b>Sink<sub>2</sub> = 100.00 %</b>" in html
    fig = ablation_deltas(result.rows, "t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("sink: Sink_2 100%" in t for t in texts)


def test_the_delta_figure_prints_two_significant_digits():
    from types import SimpleNamespace

    delta = SimpleNamespace(mean=0.064912, low=0.054213, high=0.075634)
    row = SimpleNamespace(label="mask-sink", status="ok", delta=delta, sink_top=None, ablation="mask-sink")
    fig = ablation_deltas([row], "t")
    assert [t.get_text() for t in fig.axes[0].texts] == ["+0.065 [+0.054, +0.076]"]
