"""Massive activations: one finder for `measure` and `ablate` (sinklab.measure.massive), on a hand-built
Llama whose first token carries a 27x precursor in dim 3 at block 0, while its real massive dim 17 grows
from 4x (block 0) to 111x (block 1, where it first becomes massive) and about 4,300x (block 2, its peak)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

import sinklab
from sinklab.errors import SinklabError
from sinklab.measure.make_tiny import tiny_config
from sinklab.measure.massive import MassiveTable, find_massive
from sinklab.measure.outputs import summary as measure_summary

from .helpers import block_output_hook, losses, remove

PRECURSOR, REAL, FEATURE = 3, 17, 40
T, SAMPLES = 16, 4


def build_precursor_model() -> torch.nn.Module:
    """Token 0's embedding holds the precursor (dim 3 = 20) and a feature (dim 40 = 5) that no other token
    has; each block's MLP is one unit reading the feature: it writes dim 17 (0.2, 5, 3000, -5e4 per block:
    the last block takes a little back, so the ratio peaks at block 2) and block 1 takes the precursor back
    down. Other tokens' MLPs output exactly zero."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("llama", layers=4), attn_implementation="eager")
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb.normal_(0, 1.0)
        emb[:, [PRECURSOR, REAL, FEATURE]] = 0.0
        emb[0, PRECURSOR], emb[0, FEATURE] = 20.0, 5.0
        for block, grow, drop in zip(model.model.layers, (0.2, 5.0, 3e3, -5e4), (0, -1.0, 0, 0), strict=True):
            mlp = block.mlp
            for w in (mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight):
                w.zero_()
            mlp.gate_proj.weight[0, FEATURE], mlp.up_proj.weight[0, FEATURE] = 5.0, 1.0
            mlp.down_proj.weight[REAL, 0], mlp.down_proj.weight[PRECURSOR, 0] = grow, drop
            block.self_attn.o_proj.weight.mul_(0.1)
    return model.eval()


@pytest.fixture(scope="module")
def precursor(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, torch.Tensor]:
    folder = tmp_path_factory.mktemp("precursor")
    build_precursor_model().save_pretrained(folder / "model")
    ids = torch.randint(3, 300, (SAMPLES, T), generator=torch.Generator().manual_seed(1))
    ids[:, 0] = 0
    path = folder / "ids.jsonl"
    path.write_text("".join(json.dumps({"input_ids": row}) + "\n" for row in ids.tolist()))
    return folder / "model", path, ids


def test_the_finder_reads_every_block() -> None:
    table = MassiveTable()
    hidden = torch.ones(2, 5, 8)
    table.add(0, hidden)  # block 0: nothing stands out
    first = hidden.clone()
    first[:, 0, 2] = 25.0  # block 1: a precursor in dim 2
    table.add(1, first)
    first = hidden.clone()
    first[:, 0, 2], first[:, 0, 5] = 10.0, 40.0  # block 2: dim 5 appears, the precursor fades
    table.add(2, first)
    first = hidden.clone()
    first[:, 0, 5], first[:, 0, 6] = 900.0, 30.0  # block 3: dim 5 peaks, dim 6 joins it
    table.add(3, first)
    found = find_massive(table, 20.0)
    assert found.largest == (3, 5, pytest.approx(900.0))
    assert (found.first_layer, found.first_dims) == (1, [2])
    assert found.peak_dims == [5, 6]
    assert (found.layer, found.dims, found.ratios) == (2, [5], [pytest.approx(40.0)])  # 6 is not massive yet
    assert found.top_dim[1:] == [2, 5, 5] and found.top_ratio[3] == pytest.approx(900.0)
    chosen = find_massive(table, 20.0, layer=3)
    assert (chosen.layer, chosen.dims, chosen.chosen) == (3, [5, 6], "block")
    assert find_massive(table, 20.0, layer=0).layer is None  # nothing massive there: ablate skips the rows
    assert find_massive(table, 1000.0).layer is None


def test_ablate_acts_on_the_real_dim_not_the_precursor(precursor) -> None:
    folder, path, ids = precursor
    result = sinklab.ablate_model(
        str(folder), f"ids:{path}", ["massive-zero", "massive-mean"], length=T, samples=SAMPLES
    )
    m = result.massive
    assert m["largest"]["layer"] == 2 and m["largest"]["dim"] == REAL and m["largest"]["ratio"] > 1000
    assert m["first_layer"] == 0 and m["first_dims"] == [PRECURSOR]
    assert m["layer"] == 1 and m["dims"] == [REAL] and m["ratios"][0] > 20 * 2
    ref = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    base, _ = losses(ref, ids)
    for mode in ("zero", "mean"):
        handles = block_output_hook(ref, 1, [REAL], mode)
        edited, _ = losses(ref, ids)
        remove(handles)
        row = result.row(f"massive-{mode}")
        np.testing.assert_allclose(row.loss, float(edited.mean()), atol=1e-4)
        np.testing.assert_allclose(row.delta.mean, float((edited - base).mean()), atol=1e-5)
    # The old rule (the first block with any massive dim) would have zeroed the precursor instead.
    handles = block_output_hook(ref, 0, [PRECURSOR], "zero")
    wrong, _ = losses(ref, ids)
    remove(handles)
    assert abs(float(wrong.mean()) - result.row("massive-zero").loss) > 1e-3
    assert "precursor" in " ".join(result.row("massive-zero").notes)


def test_massive_layer_chooses_the_block(precursor) -> None:
    folder, path, ids = precursor
    result = sinklab.ablate_model(
        str(folder), f"ids:{path}", ["massive-zero"], length=T, samples=SAMPLES, massive_layer=2
    )
    assert result.massive["layer"] == 2 and result.massive["dims"] == [REAL]
    ref = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    handles = block_output_hook(ref, 2, [REAL], "zero")
    edited, _ = losses(ref, ids)
    remove(handles)
    np.testing.assert_allclose(result.row("massive-zero").loss, float(edited.mean()), atol=1e-4)
    with pytest.raises(SinklabError, match="massive_layer=9 is out of range"):
        sinklab.ablate_model(
            str(folder), f"ids:{path}", ["massive-zero"], length=T, samples=1, massive_layer=9
        )


def test_measure_and_ablate_agree(precursor, tmp_path: Path) -> None:
    folder, path, _ = precursor
    measured = sinklab.measure_model(str(folder), f"ids:{path}", length=T, samples=SAMPLES, out=tmp_path)
    ablated = sinklab.ablate_model(str(folder), f"ids:{path}", ["massive-zero"], length=T, samples=SAMPLES)
    m = measured.analyses["massive"]
    assert m["largest"] == ablated.massive["largest"]
    assert (m["first_layer"], m["layer"], m["dims"]) == (0, 1, [REAL])
    assert m["by_layer"]["dim"] == [PRECURSOR, REAL, REAL, REAL]
    written = json.loads((tmp_path / "metrics.json").read_text())["analyses"]["massive"]
    assert written["peak_layer"] == 2
    line = next(x for x in measure_summary(measured).splitlines() if "massive" in x)
    assert "dim 17 peaks at" in line and "block 2" in line
    assert "first massive (> 20x) at block 0 in dim 3" in line
