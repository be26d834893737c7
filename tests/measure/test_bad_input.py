"""Every bad input to `sinklab measure` is exit code 2 and one message, no traceback: the message names the
file or option and says what is accepted. One table, one case per row; tiny models built once per module."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from sinklab.cli import main
from sinklab.measure.make_tiny import VOCAB_SIZE

# What every case runs unless it says otherwise: a tiny Llama with a tokenizer, random input, a fresh --out.
BASE: dict[str, Any] = {
    "--model": "{llama}",
    "--input": "random",
    "--length": "8",
    "--samples": "2",
    "--out": "{out}",
}
EPS = "numbers in (0, 1)"
TEXT_ACCEPTED = ".txt file (one document per line) or a .jsonl file"
IDS_ACCEPTED = '{"input_ids": [non-negative int, ...]}'
is_root = hasattr(os, "geteuid") and os.geteuid() == 0


def case(name: str, overrides: dict[str, Any], *keywords: str, marks: Any = ()) -> Any:
    return pytest.param(overrides, keywords, id=name, marks=marks)


CASES = [
    # ---- --model ----
    case("model-missing", {"--model": "{tmp}/no-such-model"}, "--model", "does not exist", "hub id"),
    case("model-no-config", {"--model": "{empty_dir}"}, "no config.json", "--gguf-file"),
    case("model-is-a-file", {"--model": "{gpt2_128}/model.safetensors"}, "--model", "is a file", "folder"),
    case("config-not-json", {"--model": "{bad_config}"}, "config.json", "not valid JSON"),
    case("config-a-list", {"--model": "{list_config}"}, "config.json", "not a JSON object"),
    case("config-unknown-type", {"--model": "{unknown_type}"}, "cannot load the config", "nonsense"),
    case("weights-truncated", {"--model": "{truncated}"}, "model.safetensors", "truncated or corrupt"),
    case("weights-garbage", {"--model": "{garbage}"}, "model.safetensors", "truncated or corrupt"),
    case("weights-empty-file", {"--model": "{empty_weights}"}, "model.safetensors", "truncated or corrupt"),
    case("weights-missing", {"--model": "{no_weights}"}, "cannot load the weights", "model.safetensors"),
    case("weights-only-pickle", {"--model": "{only_bin}"}, "cannot load the weights", "--allow-pickle"),
    case("sinklab-dir-broken", {"--model": "{broken_sinklab}"}, "config.json", '"config"'),
    case("gguf-file-missing", {"--gguf-file": "nope.gguf"}, "--gguf-file", "nope.gguf", "GGUF files there"),
    case(
        "tokenizer-missing", {"--tokenizer": "{tmp}/no-such-tok"}, "--tokenizer", "does not exist", "hub id"
    ),
    case("tokenizer-empty-dir", {"--tokenizer": "{empty_dir}"}, "--tokenizer", "no tokenizer files"),
    case("tokenizer-is-a-file", {"--tokenizer": "{docs_txt}"}, "--tokenizer", "is a file", "folder"),
    case("device-unknown", {"--device": "tpu"}, "unknown device", "cpu, cuda"),
    case(
        "device-cuda-absent",
        {"--device": "cuda"},
        "--device cuda",
        "--device cpu",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here"),
    ),
    case("dtype-unknown", {"--dtype": "float8"}, "--dtype", "float32", "bfloat16"),
    # ---- numeric options ----
    case("eps-negative", {"--eps": "-1"}, "--eps", EPS),
    case("eps-zero", {"--eps": "0"}, "--eps", EPS),
    case("eps-above-one", {"--eps": "1.5"}, "--eps", EPS),
    case("eps-one", {"--eps": "1"}, "--eps", EPS),
    case("eps-nan", {"--eps": "nan"}, "--eps", EPS),
    case("eps-second-bad", {"--eps": ["0.3", "2"]}, "--eps", EPS),
    case("eps-twice", {"--eps": ["0.3", "0.3"]}, "--eps", "twice"),
    case("eps-not-a-number", {"--eps": "high"}, "--eps", "invalid float"),
    case("samples-zero", {"--samples": "0"}, "--samples", ">= 1"),
    case("length-one", {"--length": "1"}, "--length", ">= 2"),
    case("length-not-int", {"--length": "ten"}, "--length", "invalid int"),
    case("batch-size-zero", {"--batch-size": "0"}, "--batch-size", ">= 1"),
    case("threads-zero", {"--threads": "0"}, "--threads", ">= 1"),
    case("query-block-zero", {"--query-block": "0"}, "--query-block", ">= 1"),
    case("bos-unknown", {"--bos": "maybe"}, "--bos", "auto", "sequence", "none"),
    case(
        "length-past-learned-positions", {"--model": "{gpt2_128}", "--length": "200"}, "--length 200", "128"
    ),
    # ---- --input ----
    case(
        "input-unknown-kind",
        {"--input": "webpage:x"},
        "--input",
        "unknown kind",
        "accepted forms",
        "text:FILE",
    ),
    case("input-text-no-file", {"--input": "text:"}, "missing FILE", "accepted forms"),
    case(
        "input-text-missing", {"--input": "text:{tmp}/none.txt"}, "none.txt", "does not exist", TEXT_ACCEPTED
    ),
    case("input-text-directory", {"--input": "text:{data}"}, "is a directory", TEXT_ACCEPTED),
    case("input-text-empty", {"--input": "text:{empty_txt}"}, "empty.txt", "no documents"),
    case("input-text-not-utf8", {"--input": "text:{latin1_txt}"}, "latin1.txt:1", "not UTF-8"),
    case("input-texts-too-short", {"--input": "text:{short_txt}"}, "none of its 2 documents", "--length"),
    case("input-jsonl-list-row", {"--input": "text:{list_row}"}, "list_row.jsonl:2", "got a list", '"text"'),
    case("input-jsonl-number-row", {"--input": "text:{number_row}"}, "number_row.jsonl:1", "got a number"),
    case("input-jsonl-no-text", {"--input": "text:{no_text}"}, "no_text.jsonl:1", 'no "text" field', "body"),
    case(
        "input-jsonl-text-number",
        {"--input": "text:{text_number}"},
        "text_number.jsonl:1",
        "must be a string",
    ),
    case(
        "input-jsonl-bad-json", {"--input": "text:{bad_json}"}, "bad_json.jsonl:2", "not valid JSON", '"text"'
    ),
    case(
        "input-text-no-tokenizer",
        {"--model": "{gpt2_128}", "--input": "text:{docs_txt}"},
        "needs a tokenizer",
        "--tokenizer",
    ),
    case(
        "input-ids-negative",
        {"--input": "ids:{ids_negative}"},
        "ids_negative.jsonl:2",
        "negative id -3",
        "integers",
    ),
    case(
        "input-ids-float",
        {"--input": "ids:{ids_float}"},
        "ids_float.jsonl:1",
        "non-integer id 1.5",
        "integers",
    ),
    case("input-ids-string", {"--input": "ids:{ids_string}"}, "ids_string.jsonl:1", 'non-integer id "7"'),
    case("input-ids-bool", {"--input": "ids:{ids_bool}"}, "ids_bool.jsonl:1", "non-integer id true"),
    case("input-ids-too-large", {"--input": "ids:{ids_large}"}, "ids_large.jsonl:1", f"{VOCAB_SIZE} rows"),
    case("input-ids-no-field", {"--input": "ids:{ids_no_field}"}, "ids_no_field.jsonl:1", IDS_ACCEPTED),
    case(
        "input-ids-list-row",
        {"--input": "ids:{ids_list_row}"},
        "ids_list_row.jsonl:1",
        "got a list",
        IDS_ACCEPTED,
    ),
    case("input-ids-empty", {"--input": "ids:{empty_txt}"}, "no documents"),
    case("input-ids-directory", {"--input": "ids:{data}"}, "is a directory", IDS_ACCEPTED),
    case("input-hf-empty", {"--input": "hf:"}, "hf:DATASET[:CONFIG][:SPLIT][:COLUMN]"),
    case("input-hf-too-many-parts", {"--input": "hf:a:b:c:d:e"}, "hf:DATASET[:CONFIG][:SPLIT][:COLUMN]"),
    case(
        "input-hf-missing-folder", {"--input": "hf:{tmp}/no-ds"}, "no-ds", "does not exist", "hub dataset id"
    ),
    case("input-hf-file-type", {"--input": "hf:{odd_file}"}, "unsupported data file type '.xml'", ".jsonl"),
    case("input-hf-no-column", {"--input": "hf:{dataset}:::nope"}, "no column 'nope'", "body"),
    case("input-random-seed", {"--input": "random:abc"}, "SEED must be an integer", "random[:SEED]"),
    case("input-repeat-token", {"--input": "repeat:x"}, "TOKEN_ID must be an integer"),
    case("input-repeat-negative", {"--input": "repeat:-1"}, "TOKEN_ID must be >= 0"),
    case(
        "input-repeat-too-large",
        {"--input": "repeat:100000"},
        "outside the model's vocabulary",
        f"{VOCAB_SIZE}",
    ),
    # ---- --out ----
    case("out-is-a-file", {"--out": "{docs_txt}"}, "--out", "existing file", "folder"),
    case("out-under-a-file", {"--out": "{docs_txt}/sub"}, "--out", "cannot be written"),
    case(
        "out-not-writable",
        {"--out": "/sys/sinklab-measure-out"},
        "--out",
        "cannot be written",
        marks=pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux /sys"),
    ),
    case(
        "out-read-only",
        {"--out": "{read_only}/out"},
        "--out",
        "cannot be written",
        marks=pytest.mark.skipif(is_root, reason="root writes to read-only folders"),
    ),
    case("out-run-dir", {"--out": "{run_dir}"}, "--out", "sinklab training run", "different --out"),
    case(
        "out-run-with-model",
        {"--out": "{run_with_model}"},
        "sinklab training run",
        "model/",
        "different --out",
    ),
    case("out-run-checkpoints", {"--out": "{run_with_ckpt}"}, "checkpoints/", "different --out"),
    case("out-sinklab-model-dir", {"--out": "{broken_sinklab}"}, "sinklab model", "different --out"),
]


def _write(path: Path, text: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def _lines(*rows: Any) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


@pytest.fixture(scope="module")
def world(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every file and folder the table names, built once."""
    from transformers import AutoModelForCausalLM

    from sinklab.measure.make_tiny import tiny_config

    root = tmp_path_factory.mktemp("bad_input")
    data = root / "data"
    torch.manual_seed(0)
    gpt2 = root / "gpt2_128"  # n_positions 128, no tokenizer files
    AutoModelForCausalLM.from_config(tiny_config("gpt2", layers=1, max_positions=128)).save_pretrained(gpt2)
    weights = (gpt2 / "model.safetensors").read_bytes()

    def model_copy(name: str, weights_bytes: bytes | None = None, config: str | None = None) -> str:
        folder = root / name
        folder.mkdir()
        _write(folder / "config.json", config if config is not None else (gpt2 / "config.json").read_text())
        if weights_bytes is not None:
            _write(folder / "model.safetensors", weights_bytes)
        return str(folder)

    paths = {
        "llama": str(tiny_llama),
        "gpt2_128": str(gpt2),
        "tmp": str(root),
        "data": str(data),
        "empty_dir": str(root / "empty"),
        "truncated": model_copy("truncated", weights[: len(weights) // 2]),
        "garbage": model_copy("garbage", b"this is not a safetensors file" * 40),
        "empty_weights": model_copy("empty_weights", b""),
        "no_weights": model_copy("no_weights"),
        "only_bin": model_copy("only_bin"),
        "bad_config": model_copy("bad_config", weights, "{not json"),
        "list_config": model_copy("list_config", weights, "[1, 2]"),
        "unknown_type": model_copy("unknown_type", weights, '{"model_type": "nonsense"}'),
        "broken_sinklab": model_copy("broken_sinklab", None, '{"format": "sinklab"}'),
        "docs_txt": _write(data / "docs.txt", "a document long enough for eight tokens, surely\n"),
        "empty_txt": _write(data / "empty.txt", "\n\n"),
        "short_txt": _write(data / "short.txt", "ab\ncd\n"),
        "latin1_txt": _write(data / "latin1.txt", "caf\xe9 au lait, a long enough line\n".encode("latin-1")),
        "list_row": _write(data / "list_row.jsonl", _lines({"text": "fine"}, ["a", "list"])),
        "number_row": _write(data / "number_row.jsonl", _lines(5)),
        "no_text": _write(data / "no_text.jsonl", _lines({"body": "x"})),
        "text_number": _write(data / "text_number.jsonl", _lines({"text": 5})),
        "bad_json": _write(data / "bad_json.jsonl", _lines({"text": "fine"}, "{text: unquoted}")),
        "ids_negative": _write(
            data / "ids_negative.jsonl", _lines({"input_ids": [1] * 8}, {"input_ids": [1, -3]})
        ),
        "ids_float": _write(data / "ids_float.jsonl", _lines({"input_ids": [1, 1.5]})),
        "ids_string": _write(data / "ids_string.jsonl", _lines({"input_ids": [1, "7"]})),
        "ids_bool": _write(data / "ids_bool.jsonl", _lines({"input_ids": [1, True]})),
        "ids_large": _write(data / "ids_large.jsonl", _lines({"input_ids": [1] * 7 + [100000]})),
        "ids_no_field": _write(data / "ids_no_field.jsonl", _lines({"ids": [1, 2]})),
        "ids_list_row": _write(data / "ids_list_row.jsonl", _lines([1, 2, 3])),
        "odd_file": _write(data / "rows.xml", "<rows/>\n"),
        "dataset": _write(root / "dataset" / "train.jsonl", _lines({"body": "x"})).removesuffix(
            "/train.jsonl"
        ),
        "run_dir": str(root / "run"),
        "run_with_model": str(root / "run_model"),
        "run_with_ckpt": str(root / "run_ckpt"),
        "read_only": str(root / "read_only"),
    }
    (root / "empty").mkdir()
    _write(root / "only_bin" / "pytorch_model.bin", b"never unpickled")
    _write(root / "run" / "config.json", "{}")
    _write(root / "run" / "log.jsonl", "")
    _write(root / "run" / "metrics.json", '{"from": "training"}')
    (root / "run_model" / "model").mkdir(parents=True)
    (root / "run_ckpt" / "checkpoints").mkdir(parents=True)
    (root / "read_only").mkdir()
    (root / "read_only").chmod(0o500)
    yield paths
    (root / "read_only").chmod(0o700)
    shutil.rmtree(root, ignore_errors=True)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """main()'s return code and stderr; argparse's own errors (a bad choice or number) exit with 2."""
    try:
        rc = main(argv)
    except SystemExit as exit_:
        rc = exit_.code
    return int(rc or 0), capsys.readouterr().err


def fill(text: str, paths: dict[str, str]) -> str:
    """{name} -> the path of that name (a plain replace: messages hold JSON braces of their own)."""
    for name, path in paths.items():
        text = text.replace("{" + name + "}", path)
    return text


def build_argv(overrides: dict[str, Any], paths: dict[str, str]) -> list[str]:
    argv = ["measure"]
    for option, value in {**BASE, **overrides}.items():
        values = value if isinstance(value, list) else [value]
        argv += [option, *(fill(v, paths) for v in values)]
    return argv


@pytest.mark.parametrize(("overrides", "keywords"), CASES)
def test_bad_input_is_one_clear_message(
    overrides: dict[str, Any],
    keywords: tuple[str, ...],
    world: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = {**world, "out": str(tmp_path / "out")}
    rc, err = run_cli(build_argv(overrides, paths), capsys)
    assert rc == 2, err
    assert "Traceback" not in err
    assert "sinklab measure: error:" in err
    message = err.split("error:", 1)[1]
    for keyword in keywords:
        assert fill(keyword, paths) in message, f"{keyword!r} not in {message!r}"
    # A failed measurement leaves no --out behind (it is made for the run and removed again).
    assert not (tmp_path / "out").exists()
    assert json.loads((Path(world["run_dir"]) / "metrics.json").read_text()) == {"from": "training"}
