"""Long inputs: --pack (documents joined with the tokenizer's EOS, cut into T-token windows), the
text:FILE.jsonl:FIELD form, and the all-skipped error that names the one-document-per-line rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import sinklab
from sinklab.errors import SinklabError
from sinklab.measure.inputs import load_inputs
from sinklab.measure.load import load_tokenizer

WRAPPED = "the quick brown fox\njumps over the\nlazy dog and runs\naway from the farm\n" * 6


def test_a_hard_wrapped_text_is_skipped_with_a_reason(tiny_llama: Path, tmp_path: Path) -> None:
    path = tmp_path / "wrapped.txt"
    path.write_text(WRAPPED)
    with pytest.raises(SinklabError, match="one document per line") as err:
        sinklab.measure_model(str(tiny_llama), f"text:{path}", length=32, samples=4)
    assert "pack" in str(err.value)


def test_pack_cuts_windows_from_the_joined_documents(tiny_llama: Path, tmp_path: Path) -> None:
    path = tmp_path / "wrapped.txt"
    path.write_text(WRAPPED)
    tok = load_tokenizer(tiny_llama)
    inputs = load_inputs(f"text:{path}", tokenizer=tok, length=32, samples=4, bos="none", pack=True)
    stream: list[int] = []
    for line in WRAPPED.splitlines():
        stream += tok(line, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert inputs.ids.tolist() == [stream[i * 32 : (i + 1) * 32] for i in range(4)]
    assert any(n.startswith("packed") for n in inputs.notes)
    seq = load_inputs(f"text:{path}", tokenizer=tok, length=32, samples=4, bos="sequence", pack=True)
    assert (seq.ids[:, 0] == tok.bos_token_id).all() and seq.first_token["how"] == "added"
    assert seq.ids[0, 1:].tolist() == stream[:31]
    result = sinklab.measure_model(str(tiny_llama), f"text:{path}", length=32, samples=4, pack=True)
    assert result.samples == 4 and result.skipped == 0
    with pytest.raises(SinklabError, match="pack"):
        sinklab.measure_model(str(tiny_llama), "random", length=8, samples=2, pack=True)


def test_the_json_field_of_a_text_file(tiny_llama: Path, tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    rows = [{"body": f"a long enough document number {i} with words", "id": i} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = sinklab.measure_model(str(tiny_llama), f"text:{path}:body", length=8, samples=3)
    assert result.samples == 3
    with pytest.raises(SinklabError, match=r'no "text" field \(keys: body, id\); choose the field'):
        sinklab.measure_model(str(tiny_llama), f"text:{path}", length=8, samples=3)
    tok = load_tokenizer(tiny_llama)
    ids = load_inputs(f"text:{path}:body", tokenizer=tok, length=8, samples=1).ids
    assert torch.equal(ids[0], torch.tensor(tok(rows[0]["body"])["input_ids"][:8]))
