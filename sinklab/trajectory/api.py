"""`sinklab trajectory`: `sinklab measure` on every checkpoint of a series, on the same token ids, resumable.

OUT/ids.jsonl         the token ids, made once from the series' tokenizer (the first checkpoint's, or
                      --tokenizer); every checkpoint is measured on them (`--input ids:OUT/ids.jsonl`)
OUT/settings.json     the options that change numbers, and the series' architecture and tokenizer: a rerun
                      with other options is refused, a checkpoint of another architecture or tokenizer too
OUT/measured/<label>/metrics.json (+ CSVs)   each checkpoint's measurement; present = done
OUT/trajectory.json, trajectory.csv, figures, report.html   (sinklab.trajectory.outputs)
Each file is written atomically, so Ctrl-C, SIGTERM or kill -9 lose at most the checkpoint in progress, and
the same command measures only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sinklab.errors import SinklabError
from sinklab.io import atomic_write_json, atomic_write_text, sigterm_as_interrupt
from sinklab.measure.checks import has_sinklab_config, prepare_out
from sinklab.measure.config import MeasureConfig
from sinklab.trajectory import hub
from sinklab.trajectory.series import Checkpoint, resolve_series

DEFAULT_POSITIONS = 4  # trajectory measures Sink_1..Sink_4 by the fast path unless --positions says otherwise
# config.json keys that make two checkpoints one architecture (whichever the config has)
ARCHITECTURE_KEYS = (
    "model_type",
    "architectures",
    "num_hidden_layers",
    "n_layer",
    "num_attention_heads",
    "n_head",
    "num_key_value_heads",
    "hidden_size",
    "n_embd",
    "d_model",
    "intermediate_size",
    "d_ff",
    "head_dim",
    "vocab_size",
)
# settings whose change would make a resumed trajectory mix two measurements
NUMBER_SETTINGS = ("input", "length", "samples", "eps", "positions", "bos", "pack", "dtype", "tokenizer")


@dataclass
class Measured:
    """One checkpoint of a trajectory and its metrics.json document."""

    checkpoint: Checkpoint
    metrics: dict[str, Any]
    measured_now: bool = False


@dataclass
class Trajectory:
    out: Path
    input: str
    checkpoints: list[Measured] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def measured_now(self) -> int:
        return sum(m.measured_now for m in self.checkpoints)


def architecture(folder: Path) -> dict[str, Any]:
    """What makes checkpoints one architecture, from config.json (a sinklab model's whole model config)."""
    config = json.loads((folder / "config.json").read_text())
    if has_sinklab_config(folder):
        return {k: v for k, v in config.items() if k not in ("format", "format_version")}
    return {k: config[k] for k in ARCHITECTURE_KEYS if k in config}


def tokenizer_folder(folder: Path) -> Path | None:
    """Where a checkpoint's tokenizer is: its own folder, or a sinklab run's tokenizer/ above it."""
    from sinklab.measure.load import has_tokenizer_files

    for cand in [folder, folder / "tokenizer", *(p / "tokenizer" for p in folder.parents[:3])]:
        if cand.is_dir() and has_tokenizer_files(cand):
            return cand
    return None


def tokenizer_fingerprint(folder: Path) -> str | None:
    """A hash of the tokenizer's vocabulary and special tokens (None: the checkpoint carries none)."""
    where = tokenizer_folder(folder)
    if where is None:
        return None
    from sinklab.measure.load import load_tokenizer

    tok = load_tokenizer(where)
    specials = {name: getattr(tok, f"{name}_token_id", None) for name in ("bos", "eos", "pad", "unk")}
    text = json.dumps([sorted(tok.get_vocab().items()), specials], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_member(ckpt: Checkpoint, folder: Path, series: dict[str, Any]) -> None:
    """Refuse a checkpoint of another architecture or tokenizer than the series' first (`series`)."""
    arch = architecture(folder)
    if arch != series["architecture"]:
        diff = sorted(
            k for k in {*arch, *series["architecture"]} if arch.get(k) != series["architecture"].get(k)
        )
        shown = ", ".join(f"{k}: {series['architecture'].get(k)!r} vs {arch.get(k)!r}" for k in diff[:6])
        raise SinklabError(
            f"{ckpt.source} is another architecture than {series['first']} ({shown}): a trajectory follows "
            "one model through its training; accepted: checkpoints of one series"
        )
    tok = tokenizer_fingerprint(folder)
    if tok is not None and series.get("tokenizer") is not None and tok != series["tokenizer"]:
        raise SinklabError(
            f"{ckpt.source} has another tokenizer than {series['first']} (vocabulary or special tokens "
            "differ): every checkpoint is measured on the same token ids, so the series must share one "
            "tokenizer"
        )


def _settings(source: str, cfg: MeasureConfig) -> dict[str, Any]:
    tokenizer = cfg.tokenizer if isinstance(cfg.tokenizer, str | type(None)) else type(cfg.tokenizer).__name__
    values = {
        "input": source,
        "length": cfg.length,
        "samples": cfg.samples,
        "eps": list(cfg.eps),
        "positions": cfg.positions,
        "bos": cfg.bos,
        "pack": cfg.pack,
        "dtype": str(cfg.dtype) if cfg.dtype is not None else None,
        "tokenizer": None if tokenizer is None else str(tokenizer),
    }
    return {k: values[k] for k in NUMBER_SETTINGS}


def check_settings(out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """OUT/settings.json: written by the first run; a rerun with other numbers-changing options is refused."""
    path = out / "settings.json"
    if not path.is_file():
        atomic_write_json(path, {"measure": settings, "series": None})
        return {"measure": settings, "series": None}
    saved = json.loads(path.read_text())
    changed = [k for k in NUMBER_SETTINGS if saved["measure"].get(k) != settings.get(k)]
    if changed:
        was = ", ".join(f"{k} {saved['measure'].get(k)!r} (now {settings.get(k)!r})" for k in changed)
        raise SinklabError(
            f"{out} holds a trajectory measured with {was}; run the same options again to continue it, or "
            "use another --out"
        )
    return saved


def make_ids(folder: Path, source: str, cfg: MeasureConfig, path: Path) -> None:
    """OUT/ids.jsonl from the input SPEC, tokenised once with the series' tokenizer: the first checkpoint's
    (at `folder`), or cfg.tokenizer (--tokenizer)."""
    from sinklab.measure.opening import open_measurement

    opened = open_measurement(str(folder), source, cfg, "trajectory")
    rows = opened.ids.tolist()
    atomic_write_text(path, "".join(json.dumps({"input_ids": r}) + "\n" for r in rows))
    if hasattr(opened.runner, "remove_hooks"):
        opened.runner.remove_hooks()


def _local_folder(ckpt: Checkpoint, downloads: hub.Downloads, cfg: MeasureConfig) -> Path:
    if ckpt.on_hub:
        ckpt.path = hub.fetch(ckpt, downloads, allow_pickle=cfg.allow_pickle)
    assert ckpt.path is not None
    return Path(ckpt.path)


def measure_checkpoint(folder: Path, ids_path: Path, cfg: MeasureConfig, out: Path) -> dict[str, Any]:
    """`sinklab measure --model FOLDER --input ids:OUT/ids.jsonl` (no plots); its metrics.json document."""
    from sinklab.measure.api import measure_command

    samples = sum(1 for line in ids_path.read_text().splitlines() if line.strip())
    # The ids are used exactly as made: no BOS added again, the tokenizer already applied.
    ids_cfg = replace(cfg, samples=samples, bos="auto", pack=False, tokenizer=None, progress=False)
    result = measure_command(str(folder), f"ids:{ids_path}", ids_cfg, out=out, plots=False)
    return result.to_dict()


def run_trajectory(
    checkpoints: list[str],
    source: str,
    cfg: MeasureConfig,
    out: str | Path,
    *,
    revisions: str | None = None,
    tokens_per_step: int | None = None,
    keep_downloads: bool = False,
    plots: bool = True,
    log: Callable[[str], None] | None = None,
) -> Trajectory:
    """Measure every checkpoint of the series (in training order) on the same ids; write the outputs."""
    from sinklab.measure.inputs import check_spec
    from sinklab.trajectory.outputs import write_outputs

    say = log or (lambda text: print(text, file=sys.stderr))
    check_spec(source)
    series = resolve_series(checkpoints, revisions, tokens_per_step)
    out = Path(out)
    prepare_out(out)
    saved = check_settings(out, _settings(source, cfg))
    downloads = hub.Downloads(out / "downloads.json")
    ids_path = out / "ids.jsonl"
    result = Trajectory(out=out, input=source)
    with sigterm_as_interrupt():
        _check_local_members(series, saved, out)
        hub.check_cached(series)
        for n, ckpt in enumerate(series, 1):
            folder_out = out / "measured" / ckpt.label
            done = folder_out / "metrics.json"
            if done.is_file():
                result.checkpoints.append(Measured(ckpt, json.loads(done.read_text())))
                say(f"[{n}/{len(series)}] {ckpt.source} (step {ckpt.step}): done before, kept")
                continue
            say(f"[{n}/{len(series)}] {ckpt.source} (step {ckpt.step}): measuring")
            folder = _local_folder(ckpt, downloads, cfg)
            saved = _check_or_record_series(ckpt, folder, saved, out)
            if not ids_path.is_file():
                make_ids(folder, source, cfg, ids_path)  # the series' tokenizer, or --tokenizer
            metrics = measure_checkpoint(folder, ids_path, cfg, folder_out)
            result.checkpoints.append(Measured(ckpt, metrics, measured_now=True))
            if ckpt.on_hub and not keep_downloads and hub.drop(ckpt, downloads):
                say(f"  dropped {ckpt.source} from the hub cache (downloaded by this command)")
    result.written = write_outputs(result, cfg, tokens_per_step, plots=plots)
    return result


def _check_or_record_series(
    ckpt: Checkpoint, folder: Path, saved: dict[str, Any], out: Path
) -> dict[str, Any]:
    """The first checkpoint measured fixes the series' architecture and tokenizer; later ones must match."""
    if saved.get("series") is None:
        saved = {
            **saved,
            "series": {
                "first": ckpt.source,
                "architecture": architecture(folder),
                "tokenizer": tokenizer_fingerprint(folder),
            },
        }
        atomic_write_json(out / "settings.json", saved)
    else:
        check_member(ckpt, folder, saved["series"])
    return saved


def _check_local_members(series: list[Checkpoint], saved: dict[str, Any], out: Path) -> None:
    """Local checkpoints are all checked before anything is measured (hub ones as they are fetched)."""
    local = [c for c in series if not c.on_hub and c.path is not None]
    if not local:
        return
    reference = saved.get("series") or {
        "first": local[0].source,
        "architecture": architecture(Path(local[0].path)),  # type: ignore[arg-type]
        "tokenizer": tokenizer_fingerprint(Path(local[0].path)),  # type: ignore[arg-type]
    }
    for ckpt in local:
        check_member(ckpt, Path(ckpt.path), reference)  # type: ignore[arg-type]
