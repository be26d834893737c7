"""Model folders as `save_pretrained` leaves them (config + safetensors, no tokenizer files): ids:, random and
repeat inputs use the input embedding's size, never an empty tokenizer that transformers 5 builds from the
config; and --length is checked against the model's positions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sinklab
from sinklab.cli import main
from sinklab.measure.checks import MeasureError
from sinklab.measure.inputs import load_inputs
from sinklab.measure.load import load_model
from sinklab.measure.make_tiny import tiny_config

ARCHITECTURES = ("gpt2", "gpt_neox", "opt", "qwen2", "qwen3", "gemma2")
VOCAB = 512


def save_bare(model_type: str, folder: Path, **sizes: int) -> Path:
    """A tiny random model saved with save_pretrained only: config.json + model.safetensors."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(tiny_config(model_type, **sizes)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bare")
    return {t: save_bare(t, root / t, vocab_size=VOCAB, layers=1) for t in ARCHITECTURES}


@pytest.fixture(scope="module")
def ids_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Rows that reach the last embedding row (VOCAB - 1): what an empty tokenizer's one id once refused."""
    path = tmp_path_factory.mktemp("ids") / "ids.jsonl"
    rows = [list(range(start, start + 12)) for start in (0, 200, 400)] + [[VOCAB - 1] * 12]
    path.write_text("".join(json.dumps({"input_ids": r}) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_ids_input_uses_the_embedding_size(
    model_type: str, bare: dict[str, Path], ids_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = bare[model_type]
    assert not any(p.name.startswith(("tokenizer", "vocab", "merges")) for p in folder.iterdir())
    out = tmp_path / "out"
    argv = ["measure", "--model", str(folder), "--input", f"ids:{ids_file}", "--length", "12"]
    rc = main([*argv, "--samples", "4", "--batch-size", "2", "--no-plots", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples"] == 4 and metrics["length"] == 12
    assert any("no tokenizer files" in n for n in metrics["notes"])

    loaded = load_model(str(folder), device="cpu")
    assert loaded.tokenizer is None and loaded.vocab_size == VOCAB and loaded.draw_size == VOCAB


@pytest.mark.parametrize("model_type", ["gpt2", "qwen2"])
def test_random_repeat_and_text_without_tokenizer(
    model_type: str, bare: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = load_model(str(bare[model_type]), device="cpu")
    drawn = load_inputs("random", tokenizer=None, length=64, samples=32, vocab_size=loaded.vocab_size)
    assert int(drawn.ids.max()) > VOCAB // 2  # drawn from all 512 rows, not from an empty tokenizer's 1
    res = sinklab.measure_model(
        str(bare[model_type]), f"repeat:{VOCAB - 1}", length=6, samples=2, device="cpu"
    )
    assert res.samples == 2
    docs = tmp_path / "docs.txt"
    docs.write_text("some text that needs a tokenizer\n")
    rc = main(
        ["measure", "--model", str(bare[model_type]), "--input", f"text:{docs}", "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "needs a tokenizer" in err and "--tokenizer" in err
    assert not (tmp_path / "o").exists()  # made for the run, removed again when it failed


def test_rope_model_past_its_positions_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = save_bare("qwen2", tmp_path / "qwen2", max_positions=16, layers=1)
    out = tmp_path / "out"
    rc = main(
        [
            "measure",
            "--model",
            str(folder),
            "--length",
            "24",
            "--samples",
            "2",
            "--no-plots",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "warning" in captured.err and "max_position_embeddings=16" in captured.err
    assert any(
        "max_position_embeddings=16" in n for n in json.loads((out / "metrics.json").read_text())["notes"]
    )


def test_learned_positions_are_a_hard_limit(tmp_path: Path) -> None:
    """GPT-2 and OPT have a position table: --length past it is an error before any input is read."""
    for model_type in ("gpt2", "opt"):
        folder = save_bare(model_type, tmp_path / model_type, max_positions=32, layers=1)
        assert sinklab.measure_model(str(folder), "random", length=32, samples=1, device="cpu").length == 32
        with pytest.raises(MeasureError, match="learned position table has 32 positions"):
            sinklab.measure_model(str(folder), "random", length=33, samples=1, device="cpu")


def test_text_input_with_a_separate_tokenizer(
    bare: dict[str, Path], tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the 'needs a tokenizer' message advises: --tokenizer from another folder."""
    docs = tmp_path / "docs.txt"
    docs.write_text("the quick brown fox jumps over the lazy dog, twice over\n" * 3)
    argv = [
        "measure",
        "--model",
        str(bare["gpt2"]),
        "--tokenizer",
        str(tiny_llama),
        "--input",
        f"text:{docs}",
    ]
    rc = main([*argv, "--length", "8", "--samples", "3", "--no-plots", "--out", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["samples"] == 3
