"""Config validation, presets, the schedule, weight-decay groups and the masked loss."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest
import torch
import torch.nn.functional as F

from sinklab.config import apply_overrides, from_dict, to_dict
from sinklab.model import AttentionConfig, ModelConfig, SinkLM
from sinklab.train.command import resolve_config
from sinklab.train.config import DataConfig, RunConfig, TrainConfig, run_config_from_dict
from sinklab.train.evaluate import masked_loss, target_mask
from sinklab.train.optim import lr_at, param_groups
from sinklab.train.presets import get_run_preset, run_preset_names


@pytest.mark.parametrize("name", run_preset_names())
def test_every_preset_builds_and_roundtrips(name):
    cfg = get_run_preset(name)
    assert isinstance(cfg, RunConfig)
    assert run_config_from_dict(to_dict(cfg)) == cfg


def test_paper_presets_use_the_paper_packing_and_optimiser():
    cfg = get_run_preset("60m")
    assert cfg.data.bos == "none" and cfg.data.context == 2048
    t = cfg.train
    assert (t.lr, t.warmup, t.weight_decay, t.decay, t.betas, t.schedule) == (
        4e-4,
        100,
        0.1,
        "all",
        (0.9, 0.95),
        "constant",
    )
    assert t.batch_size * cfg.data.context == 512 * 2048
    assert get_run_preset("tiny-bos").data.bos == "sequence"


def test_required_keys_exist():
    cfg = resolve_config(
        "tiny",
        None,
        [
            "train.steps=5",
            "train.batch_size=4",
            "train.lr=1e-3",
            "train.weight_decay=0.5",
            "train.warmup=2",
            "train.eval_every=2",
            "train.seed=3",
            "train.checkpoint_every=0",
            "train.distributed=fsdp",
            "data.context=16",
            "data.bos=true",
            "model.n_layer=2",
        ],
    )
    assert cfg.data.bos == "sequence" and cfg.train.distributed == "fsdp" and cfg.model.n_layer == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.stepz=1", "accepted under 'train': adam_eps"),
        ("data.bos=maybe", "none, sequence, document, both"),
        ("train.schedule=linear", "constant, cosine"),
        ("train.distributed=deepspeed", "ddp, fsdp"),
        ("train.steps=0", "train.steps"),
        ("data.random_start=3", "set together"),
        ("data.fixed_position=99", "outside data.context"),
        ("data.fraction=1.5", "data.fraction"),
    ],
)
def test_bad_keys_and_values_say_what_is_accepted(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(get_run_preset("tiny"), [override])


def _float_fields() -> list[tuple[str, str, object]]:
    """(section path, field, a non-finite value of its shape) for every float-valued config field."""
    found = []
    for path, cls in [
        ("model", ModelConfig),
        ("model.attention", AttentionConfig),
        ("data", DataConfig),
        ("train", TrainConfig),
    ]:
        for f in dataclasses.fields(cls):
            tp = typing.get_type_hints(cls)[f.name]
            args = typing.get_args(tp)
            if tp is float or (float in args and typing.get_origin(tp) is not tuple):
                found += [(path, f.name, math.nan), (path, f.name, -math.inf)]
            elif typing.get_origin(tp) is tuple and float in args:
                found.append((path, f.name, [0.5, math.inf]))
    return found


@pytest.mark.parametrize(("path", "name", "value"), _float_fields(), ids=lambda v: str(v))
def test_every_float_field_rejects_nan_and_inf(path, name, value):
    data = {name: value}
    for part in reversed(path.split(".")):
        data = {part: data}
    with pytest.raises(ValueError, match=rf"{path}\.{name} must be"):
        from_dict(RunConfig, data)


@pytest.mark.parametrize(
    ("text", "expected"), [("2000", 2000), ("2e3", 2000), ("1.5e0", None), ("inf", None), ("nan", None)]
)
def test_integers_accept_integral_exponents_only(text, expected):
    if expected is None:
        with pytest.raises(ValueError, match=r"train\.steps: expected an integer"):
            apply_overrides(get_run_preset("tiny"), [f"train.steps={text}"])
    else:
        assert apply_overrides(get_run_preset("tiny"), [f"train.steps={text}"]).train.steps == expected


def test_one_threshold_is_a_list_of_one_and_a_pair_needs_two():
    assert apply_overrides(get_run_preset("tiny"), ["train.eval_eps=0.1"]).train.eval_eps == (0.1,)
    with pytest.raises(ValueError, match=r"train.betas must be a list of 2 finite numbers"):
        apply_overrides(get_run_preset("tiny"), ["train.betas=0.9"])
    with pytest.raises(ValueError, match=r"train.betas must be a list of 2"):
        TrainConfig(betas=(0.9, 0.95, 0.99))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.attention.prefix=65", "model.attention.prefix=65 is longer than data.context=64"),
        ("model.attention.window=65", "model.attention.window=65 is longer than data.context=64"),
    ],
)
def test_lengths_are_checked_against_data_context(override, message):
    mask = override.split(".")[2].split("=")[0]
    cfg = apply_overrides(
        get_run_preset("tiny"), [f"model.attention.mask={mask}", override.replace("65", "64")]
    )
    assert cfg.model.attention.mask == mask  # the longest allowed
    with pytest.raises(ValueError, match=message):
        apply_overrides(get_run_preset("tiny"), [f"model.attention.mask={mask}", override])


def test_schedule():
    cfg = TrainConfig(steps=100, lr=1.0, warmup=10, schedule="cosine", min_lr=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.1 + 0.5 * (1 + math.cos(math.pi * 0.5)) * 0.9)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    const = TrainConfig(steps=100, lr=1.0, warmup=10)
    assert lr_at(50, const) == lr_at(99, const) == 1.0


def test_weight_decay_on_every_parameter_or_matrices_only():
    model = SinkLM(ModelConfig(vocab_size=64, context=16, n_layer=1, n_head=2, d_model=16))
    n = len(list(model.parameters()))
    (only,) = param_groups(model, "all", 0.1)
    assert len(only["params"]) == n and only["weight_decay"] == 0.1  # norms and embeddings too
    mats, rest = param_groups(model, "matrices", 0.1)
    assert all(p.dim() >= 2 for p in mats["params"]) and rest["weight_decay"] == 0.0
    assert rest["params"] and all(p.dim() < 2 for p in rest["params"])


def _naive_loss(logits, targets, keep):
    terms = [
        F.cross_entropy(logits[b, t][None], targets[b, t][None])
        for b in range(targets.shape[0])
        for t in range(targets.shape[1])
        if keep[t]
    ]
    return torch.stack(terms).mean()


@pytest.mark.parametrize("prefix", [None, 3])
def test_loss_mask_position_by_position(prefix):
    attn = AttentionConfig(mask="prefix", prefix=prefix) if prefix else AttentionConfig()
    model = SinkLM(ModelConfig(vocab_size=64, context=16, n_layer=1, n_head=2, d_model=16, attention=attn))
    mask = target_mask(model, 6)
    # target j is token j + 1 of the block; a prefix LM with p = 3 predicts tokens 3.. only (paper Sec. 6)
    expected = [True] * 6 if prefix is None else [False, False, True, True, True, True]
    assert mask.tolist() == expected
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 6, 64), torch.randint(0, 64, (2, 6))
    assert masked_loss(logits, targets, mask).item() == pytest.approx(
        _naive_loss(logits, targets, expected).item()
    )


@pytest.mark.parametrize("prefix", [None, 3])
def test_masked_loss_gradient_equals_autograd_through_cross_entropy(prefix):
    """The loss's hand-written backward against autograd through the naive per-position loss."""
    expected = [True] * 6 if prefix is None else [False, False, True, True, True, True]
    torch.manual_seed(0)
    logits = (torch.randn(2, 6, 64) * 3).requires_grad_()
    targets = torch.randint(0, 64, (2, 6))
    loss = masked_loss(logits, targets, torch.tensor(expected))
    ref = _naive_loss(logits, targets, expected)
    torch.testing.assert_close(loss, ref)
    (grad,) = torch.autograd.grad(2.5 * loss, logits)
    (ref_grad,) = torch.autograd.grad(2.5 * ref, logits)
    torch.testing.assert_close(grad, ref_grad)


def test_the_progress_line_shows_sink_1_at_each_evaluation(tmp_path, capsys) -> None:
    from sinklab.train.logging import RunLogger

    logger = RunLogger(tmp_path, enabled=True, tensorboard=False, progress=True, total_tokens=100)
    logger.progress(10, 3.5)
    logger.log({"step": 5, "tokens": 10, "val_loss": 3.25, "sink_1": 42.5, "sink_percent_window": [60.0]})
    assert logger._postfix == {
        "loss": "3.500",
        "Sink_1": "42.5%",
        "Sink_1(window)": "60.0%",
        "val_loss": "3.250",
    }
    logger.progress(10, 3.0)
    logger.close()
    err = capsys.readouterr().err
    assert "step 5: Sink_1 42.5%, Sink_1(window) 60.0%, val_loss 3.250" in err
    assert "Sink_1=42.5%" in err
