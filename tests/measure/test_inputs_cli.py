"""Input SPECs, the CLI and its outputs, and clear errors (no network)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sinklab.cli import main
from sinklab.measure.inputs import load_inputs
from sinklab.measure.make_tiny import byte_tokenizer

LONG = "the quick brown fox jumps over the lazy dog again and again until the day ends"


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def test_text_txt_skips_short_and_says_so(tmp_path: Path, tok) -> None:
    f = tmp_path / "d.txt"
    f.write_text(f"{LONG}\nshort\n{LONG} two\n\n")
    inp = load_inputs(f"text:{f}", tokenizer=tok, length=8, samples=5)
    assert inp.ids.shape == (2, 8) and inp.skipped == 1
    assert inp.ids[0, 0].item() == tok.bos_token_id  # auto: the tokenizer's own BOS
    assert any("only 2 usable" in n for n in inp.notes) and any("skipped 1" in n for n in inp.notes)
    never = load_inputs(f"text:{f}", tokenizer=tok, length=8, samples=5, bos="none")
    assert never.ids[0].tolist() == tok(LONG, add_special_tokens=False)["input_ids"][:8]


def test_text_jsonl_and_ids(tmp_path: Path, tok) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"text": LONG}) + "\n")
    assert load_inputs(f"text:{f}", tokenizer=tok, length=6, samples=1).ids.shape == (1, 6)
    g = tmp_path / "ids.jsonl"
    g.write_text(json.dumps({"input_ids": [5, 6, 7, 8, 9]}) + "\n" + json.dumps({"input_ids": [5]}) + "\n")
    inp = load_inputs(f"ids:{g}", tokenizer=None, length=4, samples=3, vocab_size=320)
    assert inp.ids.tolist() == [[5, 6, 7, 8]] and inp.skipped == 1
    always = load_inputs(f"ids:{g}", tokenizer=tok, length=4, samples=1, bos="sequence")
    assert always.ids.tolist() == [[tok.bos_token_id, 5, 6, 7]]


def test_random_and_repeat(tok) -> None:
    a = load_inputs("random:3", tokenizer=None, length=10, samples=4, vocab_size=50)
    b = load_inputs("random:3", tokenizer=None, length=10, samples=4, vocab_size=50)
    assert torch.equal(a.ids, b.ids) and int(a.ids.max()) < 50
    r = load_inputs("repeat:7", tokenizer=None, length=5, samples=2, vocab_size=50)
    assert r.ids.tolist() == [[7] * 5] * 2
    rr = load_inputs("repeat", tokenizer=None, length=5, samples=3, vocab_size=50)
    assert all(len(set(row)) == 1 for row in rr.ids.tolist())
    bos = load_inputs("repeat:7", tokenizer=tok, length=3, samples=1, vocab_size=50, bos="sequence")
    assert bos.ids.tolist() == [[tok.bos_token_id, 7, 7]]


def test_hf_local_dataset(tmp_path: Path, tok) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    rows = [{"body": LONG}, {"body": "tiny"}, {"body": LONG + " more"}]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    inp = load_inputs(f"hf:{folder}:::body", tokenizer=tok, length=8, samples=5)
    assert inp.ids.shape == (2, 8) and inp.skipped == 1
    single = load_inputs(f"hf:{folder / 'train.jsonl'}:::body", tokenizer=tok, length=8, samples=1)
    assert single.ids.shape == (1, 8)
    with pytest.raises(ValueError, match="no column 'text'"):
        load_inputs(f"hf:{folder}", tokenizer=tok, length=8, samples=1)


def test_input_errors(tmp_path: Path, tok) -> None:
    empty = tmp_path / "e.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="no documents"):
        load_inputs(f"text:{empty}", tokenizer=tok, length=8, samples=1)
    short = tmp_path / "s.txt"
    short.write_text("ab\ncd\n")
    with pytest.raises(ValueError, match="none of its 2 documents"):
        load_inputs(f"text:{short}", tokenizer=tok, length=8, samples=1)
    with pytest.raises(FileNotFoundError):
        load_inputs(f"text:{tmp_path / 'missing.txt'}", tokenizer=tok, length=8, samples=1)
    with pytest.raises(ValueError, match="accepted forms"):
        load_inputs("webpage:x", tokenizer=tok, length=8, samples=1)
    with pytest.raises(ValueError, match="auto, sequence, none"):
        load_inputs("random", tokenizer=tok, length=8, samples=1, vocab_size=9, bos="maybe")


def test_cli_outputs(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs.txt"
    docs.write_text(f"{LONG}\nno\n{LONG}!\n{LONG}?\n")
    out = tmp_path / "out"
    rc = main(
        [
            "measure",
            "--model",
            str(tiny_llama),
            "--input",
            f"text:{docs}",
            "--length",
            "12",
            "--samples",
            "4",
            "--eps",
            "0.3",
            "0.1",
            "--batch-size",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "registered attention function" in text and "skipped: 1" in text
    m = json.loads((out / "metrics.json").read_text())
    for key in (
        "model",
        "samples",
        "length",
        "skipped",
        "epsilon",
        "sink_percent",
        "sink_percent_by_eps",
        "alpha",
        "sink_percent_by_layer",
        "analyses",
        "backend",
    ):
        assert key in m
    assert m["samples"] == 3 and m["length"] == 12 and m["skipped"] == 1 and m["epsilon"] == 0.3
    assert set(m["sink_percent_by_eps"]) == {"0.3", "0.1"}
    assert len(m["alpha"]) == 2 and len(m["alpha"][0]) == 4 and len(m["alpha"][0][0]) == 12
    assert len(m["analyses"]["hidden_norm"]) == 3 and len(m["analyses"]["massive_activation_ratio"]) == 3
    for name in (
        "alpha_first_heatmap.png",
        "sink_positions.png",
        "strongest_head_map.png",
        "norms.png",
        "sink_percent.csv",
        "alpha.csv",
        "sink_percent_by_layer.csv",
        "analyses.csv",
    ):
        assert (out / name).stat().st_size > 0


def test_api_matches_cli_fields(tiny_llama: Path) -> None:
    import sinklab

    res = sinklab.measure_model(
        str(tiny_llama), "random:1", length=8, samples=3, eps=(0.3,), batch_size=2, plots=False
    )
    assert res.samples == 3 and len(res.sink_percent) == 8 and res.head_map.shape == (8, 8)
    assert res.to_dict()["backend"] == "registered attention function"


def test_model_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["measure", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    rc = main(["measure", "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no config.json" in capsys.readouterr().err
    bad_block = ["--query-block", "0"]
    rc = main(["measure", "--model", str(tmp_path / "empty"), *bad_block, "--out", str(tmp_path / "o")])
    assert rc == 2 and "--query-block must be an integer >= 1" in capsys.readouterr().err


def test_non_causal_model_is_refused(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM

    from sinklab.measure.load import load_model

    cfg = BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertForMaskedLM(cfg).save_pretrained(tmp_path / "bert")
    with pytest.raises(ValueError, match="not causal"):
        load_model(str(tmp_path / "bert"), device="cpu")
    from transformers import T5Config, T5ForConditionalGeneration

    T5ForConditionalGeneration(
        T5Config(vocab_size=64, d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16)
    ).save_pretrained(tmp_path / "t5")
    with pytest.raises(ValueError, match="not a causal language model"):
        load_model(str(tmp_path / "t5"), device="cpu")


@pytest.mark.parametrize("command", ["measure", "ablate", "reproduce", "report"])
def test_help_starts_without_torch(command: str) -> None:
    """`--help` of the commands whose options need no model answers at once: nothing imports torch."""
    code = f"""
import sys
from sinklab.cli import main
try:
    main([{command!r}, "--help"])
except SystemExit:
    pass
print("torch" if "torch" in sys.modules else "no torch")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"usage: sinklab {command}" in proc.stdout
    assert proc.stdout.count("\n  ") >= 2  # the command's own arguments were listed, not only -h
    assert proc.stdout.strip().endswith("no torch")


def test_old_spellings_name_the_new_ones() -> None:
    """One name each for the BOS modes and the precisions; the old spelling is an error that names the new
    one (for one release)."""
    from sinklab.measure.config import MeasureConfig
    from sinklab.train.config import TrainConfig

    with pytest.raises(ValueError, match="--bos always is now spelled --bos sequence"):
        MeasureConfig(bos="always")
    with pytest.raises(ValueError, match="--bos never is now spelled --bos none"):
        MeasureConfig(bos="never")
    with pytest.raises(ValueError, match="'bf16' is now spelled 'bfloat16'"):
        TrainConfig(precision="bf16")
    assert TrainConfig(precision="bfloat16").precision == "bfloat16"
