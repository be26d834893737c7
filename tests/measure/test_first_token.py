"""What position 1 holds is reported: its id, text, whether it was added (by sinklab or the tokenizer) or is
the document's own, and a note when it differs across samples."""

from __future__ import annotations

import json
from pathlib import Path

import sinklab
from sinklab.ablate.outputs import summary as ablate_summary
from sinklab.measure.outputs import summary


def test_first_token_in_metrics_and_summary(tiny_llama: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs.txt"
    docs.write_text("alpha beta gamma delta epsilon\nzeta eta theta iota kappa\nomega psi chi phi\n")
    auto = sinklab.measure_model(str(tiny_llama), f"text:{docs}", length=6, samples=3, out=tmp_path / "a")
    assert auto.first_token["how"] == "tokenizer" and auto.first_token["special"]
    assert auto.first_token["distinct"] == 1 and auto.first_token["text"] == "<s>"
    written = json.loads((tmp_path / "a" / "metrics.json").read_text())["first_token"]
    assert written["id"] == auto.first_token["id"] and written["how"] == "tokenizer"
    assert "first token: id 1 '<s>', a special token, added by the tokenizer (bos=auto)" in summary(auto)

    native = sinklab.measure_model(str(tiny_llama), f"text:{docs}", length=6, samples=3, bos="none")
    assert native.first_token["how"] == "native" and native.first_token["distinct"] == 3
    assert any(n.startswith("position 1 differs across samples: 3 distinct") for n in native.notes)
    assert "the document's own first token" in summary(native)

    added = sinklab.measure_model(str(tiny_llama), "random", length=6, samples=2, bos="sequence")
    assert added.first_token["how"] == "added" and added.first_token["share"] == 1.0
    assert (
        sinklab.measure_model(str(tiny_llama), "random", length=6, samples=2).first_token["how"] == "random"
    )

    ablated = sinklab.ablate_model(str(tiny_llama), f"text:{docs}", ["mask-sink"], length=6, samples=3)
    assert ablated.to_dict()["first_token"]["how"] == "tokenizer"
    assert "first token: id 1" in ablate_summary(ablated)
