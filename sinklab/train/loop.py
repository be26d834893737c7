"""The training loop: one function from a RunConfig to a run directory.

It never asks which rank it runs on: `distributed.DistEnv` owns the process group, wrapping and syncs,
`RunLogger` and the checkpoint writer write on the main process only.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sinklab import __version__
from sinklab.config import to_dict
from sinklab.data.evalset import write_eval_set
from sinklab.data.pipeline import PreparedData, prepare_data
from sinklab.errors import SinklabError
from sinklab.io import atomic_write_json
from sinklab.model import ModelConfig, SinkLM
from sinklab.train import checkpoint as ckpt_io
from sinklab.train.config import RunConfig
from sinklab.train.distributed import DistEnv, setup
from sinklab.train.evaluate import (
    autocast_for,
    log_fields,
    metrics_json,
    record_sink,
    target_mask,
    training_loss,
    validation_loss,
)
from sinklab.train.logging import RunLogger
from sinklab.train.optim import build_optimizer, lr_at, set_lr

EVAL_BATCH = 25  # sequences per forward pass in evaluation (100 eval sequences = 4 passes)


def resolve_model_config(cfg: RunConfig, data: PreparedData) -> ModelConfig:
    """The model's vocabulary comes from the tokenizer; its context must hold the training sequences.
    (config.RESOLVED_AT_TRAINING lists the fields set here.)"""
    needed = max(cfg.data.context, cfg.data.eval_length)
    return replace(cfg.model, vocab_size=data.model_vocab_size, context=max(cfg.model.context, needed))


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_config_json(cfg: RunConfig, data: PreparedData, preset: str | None, world: int) -> dict[str, Any]:
    return {
        "format": "sinklab-run",
        **to_dict(cfg),
        "preset": preset,
        "sinklab_version": __version__,
        "git_rev": git_revision(),
        "seed": cfg.train.seed,
        "world_size": world,
        "corpus_fingerprint": data.corpus_fingerprint,
        "tokenizer": {
            "name": data.tokenizer.name,
            "fingerprint": data.tokenizer.fingerprint,
            "vocab_size": data.tokenizer.vocab_size,
            "eos_id": data.tokenizer.eos_id,
            "bos_id": data.tokenizer.bos_id,
            "pad_id": data.tokenizer.pad_id,
        },
        "token_files": data.token_files,
    }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    cfg: RunConfig, out: str | Path, *, resume: Path | None = None, preset: str | None = None
) -> dict[str, Any]:
    """Train into run dir `out` (resuming from checkpoint folder `resume`); returns the last log line.

    Without `resume` the run starts from step 0, replacing whatever an earlier attempt logged in `out`."""
    env = setup(cfg.train.device)
    try:
        return _train(env, cfg, Path(out), resume, preset)
    finally:
        env.cleanup()


def _train(
    env: DistEnv, cfg: RunConfig, out: Path, resume: Path | None, preset: str | None
) -> dict[str, Any]:
    tc = cfg.train
    if tc.threads is not None:
        torch.set_num_threads(tc.threads)
    per_rank = tc.batch_size // env.world_size
    micro = tc.micro_batch_size or per_rank
    if tc.batch_size % env.world_size or per_rank % micro:
        raise ValueError(
            f"train.batch_size={tc.batch_size} must split into {env.world_size} process(es) x whole "
            f"micro-batches of train.micro_batch_size={micro}"
        )
    accum = per_rank // micro
    seed_everything(tc.seed)

    with env.main_first():
        data = prepare_data(cfg.data, batch_size=tc.batch_size, seed=cfg.data_seed)
    model_cfg = resolve_model_config(cfg, data)
    cfg = replace(cfg, model=model_cfg)
    settings = ckpt_io.run_settings(cfg)  # what a checkpoint must share with the run it continues
    digest = ckpt_io.config_digest(settings)

    checkpoint = ckpt_io.load_checkpoint(resume, model_cfg, cfg) if resume is not None else None
    if checkpoint is not None and checkpoint.step > tc.steps:
        raise ValueError(
            f"train.steps={tc.steps} is below the step of checkpoint {checkpoint.path} ({checkpoint.step}); "
            f"resume with --set train.steps={checkpoint.step} or more"
        )
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", run_config_json(cfg, data, preset, env.world_size))
        data.tokenizer.save(out / "tokenizer")
        write_eval_set(out / "eval_set.jsonl", data.eval_ids)
        # metrics.json marks a finished run; one from before this (longer) continuation no longer does
        (out / "metrics.json").unlink(missing_ok=True)

    model = SinkLM(model_cfg)  # seeded above: every rank builds the same initial weights
    if checkpoint is not None:
        model.load_state_dict(checkpoint.model_state)
    model.to(env.device)
    wrapped = env.wrap(model, tc.distributed)
    optimizer = build_optimizer(wrapped, tc)
    start = 0
    loss_sum, loss_steps = 0.0, 0
    if checkpoint is not None:
        ckpt_io.restore_optimizer(wrapped, optimizer, checkpoint.optimizer_state)
        ckpt_io.restore_rng(checkpoint)
        start = checkpoint.step
        loss_sum, loss_steps = checkpoint.state.get("loss_accumulator", [0.0, 0])
    forward = torch.compile(wrapped) if tc.compile else wrapped
    measured = env.unwrap(wrapped)  # the module whose forward takes record=
    autocast = autocast_for(env.device, tc.precision)
    context = cfg.data.context
    mask = target_mask(model, context).to(env.device)
    val = torch.from_numpy(data.val).to(env.device)
    eval_ids = torch.from_numpy(data.eval_ids).to(env.device)
    tokens_per_step = tc.batch_size * context

    logger = RunLogger(
        out,
        enabled=env.is_main,
        tensorboard=tc.tensorboard,
        progress=tc.progress,
        total_tokens=tc.steps * tokens_per_step,
        done_tokens=start * tokens_per_step,
        keep_through=start if checkpoint is not None else -1,
    )

    def evaluate(step: int, train_loss: float | None, timing: tuple[float, int] | None) -> dict[str, Any]:
        wrapped.eval()
        val_loss = validation_loss(measured, val, mask, EVAL_BATCH, autocast)
        if not math.isfinite(val_loss):
            raise SinklabError(_diverged("validation loss", val_loss, step, tc, out))
        record = {
            "step": step,
            "tokens": step * tokens_per_step,
            "lr": lr_at(max(step - 1, 0), tc) if step else 0.0,
            "train_loss": train_loss,
            "val_loss": val_loss,
        }
        record.update(
            log_fields(record_sink(measured, eval_ids, EVAL_BATCH, autocast), tc.eval_eps, _window(model_cfg))
        )
        seconds, steps = timing or (0.0, 0)
        record["tokens_per_s"] = tokens_per_step * steps / seconds if seconds > 0 else None
        env.reshard(wrapped)
        wrapped.train()
        logger.log(record)
        return record

    last: dict[str, Any] = {}
    try:
        if start == 0:
            last = evaluate(0, None, None)
        wrapped.train()
        window_time, window_steps = 0.0, 0
        for step in range(start, tc.steps):
            t0 = time.perf_counter()
            set_lr(optimizer, lr_at(step, tc))
            batch = torch.from_numpy(data.train.batch(step, env.rank, env.world_size)).to(
                env.device, non_blocking=True
            )
            step_loss = torch.zeros((), device=env.device)
            for i in range(accum):
                part = batch[i * micro : (i + 1) * micro]
                with env.gradient_sync(wrapped, i == accum - 1), autocast():
                    loss = training_loss(forward, part, mask) / accum
                loss.backward()
                step_loss += loss.detach()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(wrapped.parameters(), tc.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            loss_value = float(env.all_reduce_mean(step_loss))
            if not math.isfinite(loss_value):  # every rank sees the same reduced loss, so all stop here
                raise SinklabError(_diverged("training loss", loss_value, done, tc, out))
            loss_sum += loss_value
            loss_steps += 1
            window_time += time.perf_counter() - t0
            window_steps += 1
            logger.progress(tokens_per_step, loss_value)
            if done % tc.eval_every == 0 or done == tc.steps:
                last = evaluate(done, loss_sum / loss_steps, (window_time, window_steps))
                loss_sum, loss_steps = 0.0, 0
                window_time, window_steps = 0.0, 0
            if (tc.checkpoint_every and done % tc.checkpoint_every == 0) or done == tc.steps:
                state = {
                    "tokens": done * tokens_per_step,
                    "data": data.train.state(done),
                    "loss_accumulator": [loss_sum, loss_steps],
                    "config_digest": digest,
                    "settings": settings,
                    "world_size": env.world_size,
                }
                ckpt_io.save_checkpoint(
                    env, out, done, wrapped, optimizer, model_cfg, state, tc.keep_checkpoints
                )
    finally:
        logger.close()  # also on an error or Ctrl-C: the TensorBoard writer's thread must end

    ckpt_io.save_model_dir(env, wrapped, model_cfg, out / "model")
    wrapped.eval()
    result = record_sink(measured, eval_ids, EVAL_BATCH, autocast, analyses=True)
    if env.is_main:
        atomic_write_json(
            out / "metrics.json", metrics_json(result, tc.eval_eps, str(out), _window(model_cfg))
        )
    env.barrier()
    if not last and env.is_main:  # resumed at the last step: nothing was evaluated in this process
        logged = read_log(out)
        last = logged[-1] if logged else {}
    return last


def _diverged(what: str, value: float, step: int, tc: Any, out: Path) -> str:
    kept = ckpt_io.list_checkpoints(out)
    where = f"the last good checkpoint, {kept[-1]}, is kept" if kept else "no checkpoint had been written yet"
    clip = "" if tc.grad_clip > 0 else " or set train.grad_clip=1"
    return (
        f"the {what} became {value} at step {step}, so the run stopped ({where}); the training diverged: "
        f"lower the learning rate (train.lr={tc.lr:g}), or raise train.warmup ({tc.warmup}){clip}, and "
        "train again with another --out"
    )


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The log lines of a run; a last line still being written (or cut short by a kill) is left out."""
    lines = [line for line in (Path(run_dir) / "log.jsonl").read_text().splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise
    return records


def _window(model_cfg: ModelConfig) -> int | None:
    """The attention window when the mask is one (its runs also log the window-normalised Sink_k)."""
    attention = model_cfg.attention
    return attention.window if attention.mask == "window" else None
