"""Every bad input to `sinklab train` is exit status 2 and one message naming the key or file and what is
accepted, never a traceback. Each case runs `sinklab.cli.main` in-process; all fail before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sinklab.cli import main


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _run_dir(root: Path, config_text: str) -> Path:
    """A run directory whose config.json holds `config_text`."""
    _write(root / "run" / "config.json", config_text)
    return root / "run"


def _base_config(tiny_overrides) -> str:
    from sinklab.config import to_dict
    from sinklab.train.command import resolve_config

    return json.dumps({"format": "sinklab-run", **to_dict(resolve_config(None, None, tiny_overrides))})


def _edited(tiny_overrides, section: str, key: str, value) -> str:
    config = json.loads(_base_config(tiny_overrides))
    config[section][key] = value
    return json.dumps(config)


# (id, argv builder: (tmp_path, tiny_overrides) -> argv after "train", fragments the message must contain)
CASES = [
    # values: non-finite, out of range, wrong type
    ("lr-inf", lambda t, o: ["--set", "train.lr=inf"], ["train.lr", "finite number", "'inf'"]),
    ("wd-nan", lambda t, o: ["--set", "train.weight_decay=nan"], ["train.weight_decay", "finite number"]),
    ("rope-inf", lambda t, o: ["--set", "model.rope_base=inf"], ["model.rope_base", "finite number"]),
    (
        "sigmoid-bias-nan",
        lambda t, o: ["--set", "model.attention.kernel=sigmoid", "model.attention.sigmoid_bias=nan"],
        ["model.attention.sigmoid_bias", "finite number"],
    ),
    ("val-fraction-nan", lambda t, o: ["--set", "data.val_fraction=nan"], ["data.val_fraction", "finite"]),
    ("lr-negative", lambda t, o: ["--set", "train.lr=-1"], ["train.lr", "> 0"]),
    ("steps-fraction", lambda t, o: ["--set", "train.steps=1.5e0"], ["train.steps", "integer", "2e3"]),
    ("steps-word", lambda t, o: ["--set", "train.steps=many"], ["train.steps", "integer"]),
    ("steps-zero", lambda t, o: ["--set", "train.steps=0"], ["train.steps", ">= 1"]),
    ("betas-scalar", lambda t, o: ["--set", "train.betas=0.9"], ["train.betas", "list of 2", "[0.9, 0.95]"]),
    ("betas-range", lambda t, o: ["--set", "train.betas=[0.9,1.5]"], ["train.betas", "[0, 1)"]),
    ("eval-eps-range", lambda t, o: ["--set", "train.eval_eps=[0.3,2]"], ["train.eval_eps", "(0, 1)"]),
    ("bool-word", lambda t, o: ["--set", "train.compile=maybe"], ["train.compile", "true/false"]),
    ("micro-batch", lambda t, o: ["--set", "train.micro_batch_size=3"], ["micro_batch_size", "divide"]),
    ("bos", lambda t, o: ["--set", "data.bos=maybe"], ["data.bos", "none, sequence, document, both"]),
    ("schedule", lambda t, o: ["--set", "train.schedule=linear"], ["train.schedule", "constant, cosine"]),
    # combinations with the sequence length (the model's context is filled in from data.context)
    (
        "prefix-longer-than-context",
        lambda t, o: [
            "--set",
            "model.attention.mask=prefix",
            "model.attention.prefix=500",
            "data.context=64",
        ],
        ["model.attention.prefix=500", "data.context=64", "1..64"],
    ),
    (
        "window-longer-than-context",
        lambda t, o: ["--set", "model.attention.mask=window", "--set", "model.attention.window=500"],
        ["model.attention.window=500", "data.context=64", "1..64"],
    ),
    ("window-on-causal", lambda t, o: ["--set", "model.attention.window=8"], ["window", "applies to masks"]),
    ("fixed-position", lambda t, o: ["--set", "data.fixed_position=99"], ["data.fixed_position", "context"]),
    ("random-range", lambda t, o: ["--set", "data.random_start=3"], ["data.random_end", "set together"]),
    # names and keys
    ("preset", lambda t, o: ["--preset", "huge"], ["run preset 'huge'", "accepted: 1b, 60m, demo", "tiny"]),
    ("unknown-key", lambda t, o: ["--set", "train.stepz=1"], ["'train.stepz'", "accepted under 'train'"]),
    ("unknown-section", lambda t, o: ["--set", "optim.lr=1"], ["'optim.lr'", "data, model, train"]),
    ("kernel", lambda t, o: ["--set", "model.attention.kernel=cosine"], ["kernel 'cosine'", "softmax"]),
    ("position", lambda t, o: ["--set", "model.position=xpos"], ["xpos", "rope"]),
    ("no-equals", lambda t, o: ["--set", "train.lr"], ["--set expects key=value", "'train.lr'"]),
    ("section-value", lambda t, o: ["--set", "model=5"], ["'model' is a section", "model.KEY=VALUE"]),
    # --config files
    (
        "config-list",
        lambda t, o: ["--config", str(_write(t / "list.json", "[1, 2]")), "--out", str(t / "o")],
        ["list.json", "JSON object", "model, data, train", "list"],
    ),
    (
        "config-section-scalar",
        lambda t, o: ["--config", str(_write(t / "five.json", '{"model": 5}'))],
        ["five.json", "'model'", "mapping", "n_layer"],
    ),
    (
        "config-attention-scalar",
        lambda t, o: ["--config", str(_write(t / "att.json", '{"model": {"attention": "sigmoid"}}'))],
        ["att.json", "'model.attention'", "mapping", "kernel"],
    ),
    (
        "config-wrong-type",
        lambda t, o: ["--config", str(_write(t / "lr.json", '{"train": {"lr": "fast"}}'))],
        ["lr.json", "train.lr", "finite number", "'fast'"],
    ),
    (
        "config-nan",
        lambda t, o: ["--config", str(_write(t / "nan.json", '{"train": {"weight_decay": NaN}}'))],
        ["nan.json", "train.weight_decay", "finite number"],
    ),
    (
        "config-betas-scalar",
        lambda t, o: ["--config", str(_write(t / "b.json", '{"train": {"betas": 0.9}}'))],
        ["b.json", "train.betas", "list of 2"],
    ),
    (
        "config-steps-fraction",
        lambda t, o: ["--config", str(_write(t / "s.json", '{"train": {"steps": 2.5}}'))],
        ["s.json", "train.steps", "integer"],
    ),
    (
        "config-unknown-key",
        lambda t, o: ["--config", str(_write(t / "k.json", '{"train": {"seeed": 1}}'))],
        ["k.json", "'train.seeed'", "accepted under 'train.'"],
    ),
    (
        "config-not-json",
        lambda t, o: ["--config", str(_write(t / "bad.json", "{model: 1"))],
        ["bad.json", "not valid JSON"],
    ),
    ("config-missing", lambda t, o: ["--config", str(t / "nope.json")], ["nope.json"]),
    # --out and --resume
    ("no-out", lambda t, o: [], ["--out DIR is required", "--resume DIR"]),
    ("out-is-a-file", lambda t, o: ["--out", str(_write(t / "f.txt", "x"))], ["f.txt", "is a file"]),
    (
        "out-foreign-dir",
        lambda t, o: ["--out", str(_write(t / "mine" / "notes.md", "x").parent)],
        ["mine", "notes.md", "no config.json", "new or empty directory"],
    ),
    ("resume-missing", lambda t, o: ["--resume", str(t / "nothing")], ["nothing", "no such directory"]),
    (
        "resume-not-a-run",
        lambda t, o: ["--resume", str(_write(t / "plain" / "a.txt", "x").parent)],
        ["plain", "no config.json", "not a sinklab run directory"],
    ),
    (
        "resume-corrupt-config",
        lambda t, o: ["--resume", str(_run_dir(t, '{"model": {"n_la'))],
        ["config.json is corrupt", "delete"],
    ),
    (
        "resume-config-not-a-run",
        lambda t, o: ["--resume", str(_run_dir(t, "[]"))],
        ["config.json is not a sinklab run config", "model/data/train"],
    ),
    (
        "resume-config-bad-value",
        lambda t, o: ["--resume", str(_run_dir(t, _edited(o, "train", "lr", "fast")))],
        ["config.json", "train.lr", "finite number"],
    ),
    (
        "resume-change-lr",
        lambda t, o: ["--resume", str(_run_dir(t, _base_config(o))), "--set", "train.lr=1"],
        ["cannot change train.lr=1 when resuming", "accepted: train.steps"],
    ),
    (
        "resume-with-out",
        lambda t, o: ["--resume", str(_run_dir(t, _base_config(o))), "--out", str(t / "x")],
        ["--resume takes the run's own config", "--out"],
    ),
    (
        "resume-steps-not-an-integer",
        lambda t, o: ["--resume", str(_run_dir(t, _base_config(o))), "--set", "train.steps=abc"],
        ["train.steps", "integer"],
    ),
    # found when the data is prepared (before anything is written to the run directory)
    (
        "corpus-missing",
        lambda t, o: ["--out", str(t / "o"), "--set", *o, f"data.corpus={t / 'none.txt'}"],
        ["none.txt", "not a known kind or an existing path", "accepted: stdlib"],
    ),
    (
        "fixed-token-outside-vocabulary",
        lambda t, o: ["--out", str(t / "o"), "--set", *o, "data.fixed_position=1", "data.fixed_token=99999"],
        ["data.fixed_token=99999", "ids 0..383"],
    ),
    (
        "too-few-eval-sequences",
        lambda t, o: ["--out", str(t / "o"), "--set", *o, "data.eval_samples=100000"],
        ["data.eval_samples", "data.val_fraction"],
    ),
]
if not torch.cuda.is_available():
    CASES.append(
        (
            "cuda-without-cuda",
            lambda t, o: ["--out", str(t / "o"), "--set", *o, "train.device=cuda"],
            ["train.device=cuda", "CUDA is not available", "cpu or auto"],
        )
    )


@pytest.mark.parametrize(("argv", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error(argv, fragments, tmp_path, tiny_overrides, capsys):
    try:
        code = main(["train", *argv(tmp_path, tiny_overrides)])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    message = err.strip().splitlines()[-1]  # lines before it say what was being prepared
    assert message.startswith("sinklab train: error: "), err
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not (tmp_path / "o").exists()  # a run that could not start leaves no directory behind


def test_set_takes_several_pairs_after_one_flag_and_repeated_flags(capsys):
    argv = ["train", "--set", "train.steps=7", "train.lr=2e-3", "--set", "data.context=32", "--print-config"]
    assert main(argv) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["train"]["steps"], cfg["train"]["lr"], cfg["data"]["context"]) == (7, 2e-3, 32)
