"""Python API of `sinklab measure`.

    import sinklab
    result = sinklab.measure_model("path/or/hub-id", "text:docs.txt", length=64, samples=100, eps=(0.3, 0.5))
    result.sink_percent[0]          # Sink_1 in percent at the first eps

`measure_token_ids(model, ids, ...)` is the lower-level entry (used by training-time evaluation): any
model whose forward takes `record=` (sinklab's SinkLM) or any HF causal LM, on given token ids.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sinklab.measure import hf
from sinklab.measure.analysis import SCHEMA, build_metrics, jsonable
from sinklab.measure.checks import (
    MeasureError,
    has_sinklab_config,
    looks_like_path,
    prepare_out,
    remove_created,
)
from sinklab.measure.config import MeasureConfig
from sinklab.measure.inputs import check_spec, load_inputs
from sinklab.measure.metrics import DEFAULT_EPS, proxy_normalize
from sinklab.measure.observer import AttentionObserver, ModelRunner
from sinklab.measure.outputs import write_outputs
from sinklab.measure.record import QUERY_BLOCK, AttentionRecord, RecordResult

MAP_SAMPLES = 4  # samples behind the strongest head's mean map (the first ones)
# Positions the strongest head's map shows (queries and keys 1..64): a figure a few hundred pixels wide
# cannot show more single keys, and the sink column of key 1 must stay visible.
MAP_POSITIONS = 64


@dataclass
class MeasureResult:
    """Everything `sinklab measure` writes to metrics.json (same keys), plus where it was written."""

    model: str
    samples: int
    length: int
    skipped: int
    epsilon: float
    sink_percent: list[float]
    sink_percent_by_eps: dict[str, list[float]]
    alpha: list[list[list[float]]]  # [layer][head][position], mean over samples
    sink_percent_by_layer: list[list[float]]  # [layer][position]
    mean_first_alpha: float
    analyses: dict[str, Any]
    backend: str
    input: str = ""
    bos: str = "auto"
    dtype: str = "float32"
    device: str = "cpu"
    requested_samples: int = 0
    strongest_head: dict[str, Any] | None = None  # layer, head, alpha_1 (0-based layer/head)
    raw: dict[str, Any] | None = None  # metric on raw weights, for kernels whose rows need not sum to 1
    slot: dict[str, Any] | None = None  # mass of a sink slot / sink logit (gpt-oss `sinks`)
    notes: list[str] = field(default_factory=list)
    out: str | None = None
    written: list[str] = field(default_factory=list)  # files written to `out`
    # (P, P) mean map of the strongest head, first MAP_SAMPLES samples, positions 1..P (P = min(T, 64))
    head_map: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        # jsonable builds new lists and dicts, so the fields need no copy first (asdict's deep copy of
        # alpha and the norm tables cost a quarter of a second at T = 1024).
        skip = ("head_map", "out", "written")
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        return jsonable({"schema": SCHEMA, **d})


# ---- running a model over ids ---------------------------------------------------------------------
def as_runner(model: Any, name: str = "", query_block: int = QUERY_BLOCK) -> Any:
    """A runner (forward(ids, record) -> logits, .backend) for a sinklab model, an HF model or a runner."""
    if hasattr(model, "forward") and hasattr(model, "backend"):
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch model, got {type(model).__name__}")
    if hf.forward_accepts_record(model):
        return hf.RecordRunner(model.eval(), name=name)
    if hasattr(model, "set_attn_implementation"):
        return hf.prepare_hf(model.eval(), name=name, query_block=query_block)
    raise TypeError(
        f"{type(model).__name__} neither takes `record=` (sinklab model) nor is a transformers model"
    )


def record_ids(
    runner: ModelRunner, ids: torch.Tensor, record: AttentionObserver, batch_size: int, progress: bool = False
) -> AttentionObserver:
    """Feed `record` batch by batch; only one batch's activations exist at a time."""
    from tqdm.auto import tqdm

    starts = range(0, ids.shape[0], batch_size)
    for start in tqdm(starts, desc="measure", unit="batch", disable=not progress, leave=False):
        batch = ids[start : start + batch_size]
        record.start_batch(batch.shape[0], batch.shape[1])
        runner.forward(batch, record, all_logits=False)
        record.end_batch()
    return record


def measure_token_ids(
    model: Any,
    ids: torch.Tensor,
    eps: Sequence[float] = (DEFAULT_EPS,),
    batch_size: int = 8,
    *,
    analyses: bool = True,
    query_block: int = QUERY_BLOCK,
    progress: bool = False,
) -> dict[str, Any]:
    """The metric (and analyses) of `model` on ids (S, T): the metrics.json fields as a dict.

    `model`: a model whose forward takes `record=` (sinklab), an HF causal LM, or a runner from `as_runner`.
    Training mode is restored afterwards, so this can run inside a training loop.
    """
    inner = getattr(model, "model", model)
    was_training = bool(getattr(inner, "training", False))
    runner = as_runner(model, query_block=query_block)
    runner.model.eval()
    try:
        result = _record_result(runner, ids, batch_size, analyses, query_block, progress)
    finally:
        runner.model.train(was_training)
    metrics = build_metrics(result, eps)
    metrics["length"] = int(ids.shape[1])
    metrics["backend"] = runner.backend
    return jsonable(metrics)


def _record_result(
    runner: ModelRunner,
    ids: torch.Tensor,
    batch_size: int,
    analyses: bool,
    query_block: int,
    progress: bool,
    maps: HeadMapRecord | None = None,
) -> RecordResult:
    """The record of one pass over ids; `maps`, if given, is fed in the same pass."""
    record = AttentionRecord(analyses=analyses, query_block=query_block)
    record_ids(runner, ids, record if maps is None else BothObservers(record, maps), batch_size, progress)
    return record.result()


@dataclass
class HeadMapRecord:
    """An AttentionObserver that keeps the mean map of every (layer, head) over the first `samples` samples
    and the first `positions` positions (queries and keys 1..P, P = min(T, positions)): the strongest-head
    figure's data, fed in the measurement's own pass, so that figure needs no second forward.

    The P x P block is the top-left corner of the full (T, T) mean map, exact (causal queries 1..P see no
    key past P). Memory: layers x heads x P x P float64 (3 MB for 12 x 8 heads at P = 64)."""

    samples: int = MAP_SAMPLES
    positions: int = MAP_POSITIONS
    query_block: int = QUERY_BLOCK
    totals: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (H, P, P) sums over samples
    count: int = 0  # samples recorded
    batch_shape: tuple[int, int] = (0, 0)
    take: int = 0  # samples of the current batch that are recorded (the first ones)

    def wants_layer(self, layer: int) -> bool:
        return self.take > 0

    def start_batch(self, batch_size: int, seq_len: int) -> None:
        self.batch_shape = (batch_size, seq_len)
        self.take = max(0, min(batch_size, self.samples - self.count))

    def add_weights(
        self,
        layer: int,
        weights: torch.Tensor,
        query_start: int = 0,
        *,
        slot: torch.Tensor | None = None,
        normalized: bool = True,
    ) -> None:
        p = min(self.positions, self.batch_shape[1])
        stop = min(query_start + weights.shape[2], p)
        if self.take <= 0 or query_start >= p:
            return
        # A causal block may hand over only the keys it can see (shape[-1] <= T); the rest stay zero.
        rows = weights[: self.take, :, : stop - query_start].float()
        if not normalized:  # the proxy needs whole rows, so the keys are cut to p after it
            part = slot[: self.take, :, : stop - query_start].float() if slot is not None else None
            rows = proxy_normalize(rows, part)
        w = rows[..., :p]
        total = self.totals.get(layer)
        if total is None:
            total = self.totals[layer] = torch.zeros(w.shape[1], p, p, dtype=torch.float64)
        total[:, query_start:stop, : w.shape[-1]] += w.sum(0).double().cpu()

    def add_qkv(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor | None) -> None:
        return None  # the maps need the weights only

    def add_hidden(self, index: int, hidden: torch.Tensor) -> None:
        return None

    def end_batch(self) -> None:
        self.count += self.take
        self.take = 0

    def mean_map(self, layer: int, head: int) -> np.ndarray:
        """(P, P) mean map of one head; zero above the diagonal."""
        if layer not in self.totals or not self.count:
            raise RuntimeError(f"no attention map of layer {layer} was recorded")
        return (self.totals[layer][head] / self.count).numpy()


@dataclass
class BothObservers:
    """Feeds two observers from one forward pass: the first one's query blocks, the union of their layers."""

    first: AttentionObserver
    second: AttentionObserver

    @property
    def query_block(self) -> int:
        return self.first.query_block

    @property
    def batch_shape(self) -> tuple[int, int]:
        return self.first.batch_shape

    def start_batch(self, batch_size: int, seq_len: int) -> None:
        self.first.start_batch(batch_size, seq_len)
        self.second.start_batch(batch_size, seq_len)

    def wants_layer(self, layer: int) -> bool:
        return self.first.wants_layer(layer) or self.second.wants_layer(layer)

    def add_weights(
        self,
        layer: int,
        weights: torch.Tensor,
        query_start: int = 0,
        *,
        slot: torch.Tensor | None = None,
        normalized: bool = True,
    ) -> None:
        for observer in (self.first, self.second):
            if observer.wants_layer(layer):
                observer.add_weights(layer, weights, query_start, slot=slot, normalized=normalized)

    def add_qkv(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor | None) -> None:
        self.first.add_qkv(layer, q, k, v)
        self.second.add_qkv(layer, q, k, v)

    def add_hidden(self, index: int, hidden: torch.Tensor) -> None:
        self.first.add_hidden(index, hidden)
        self.second.add_hidden(index, hidden)

    def end_batch(self) -> None:
        self.first.end_batch()
        self.second.end_batch()


# ---- loading any model --------------------------------------------------------------------------
# Files any transformers tokenizer is saved as; a folder without one has no tokenizer (transformers 5 would
# build an empty one from the config, whose single id would clamp the vocabulary).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)
MIN_TOKENIZER_SIZE = 16  # fewer ids is an empty placeholder, not a tokenizer (a byte-level one has 256+)
TOKENIZER_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError, ImportError)


@dataclass
class Loaded:
    runner: ModelRunner
    tokenizer: Any | None
    name: str
    vocab_size: int  # rows of the input embedding: every input id must be below it
    bos_id: int | None
    notes: list[str] = field(default_factory=list)
    draw_size: int | None = None  # ids random/repeat draw from: the tokenizer's, where it has fewer


def has_tokenizer_files(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES) or any(folder.glob("*.tiktoken"))


def load_tokenizer(source: str | Path, **kwargs: Any) -> Any:
    """--tokenizer (a folder or hub id), with an error that names it when it is missing or unusable."""
    from transformers import AutoTokenizer

    name = str(source)
    local = Path(name).expanduser()
    accepted = "--tokenizer takes a folder with tokenizer.json or tokenizer_config.json, or a hub id"
    if not local.exists() and looks_like_path(name):
        raise FileNotFoundError(f"--tokenizer {name!r} does not exist; {accepted}")
    if local.is_file():
        raise MeasureError(f"--tokenizer {name!r} is a file; {accepted}")
    if local.is_dir() and not has_tokenizer_files(local):
        raise MeasureError(f"--tokenizer {name!r} holds no tokenizer files; {accepted}")
    try:
        tok = AutoTokenizer.from_pretrained(name, **kwargs)
    except TOKENIZER_ERRORS as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MeasureError(f"cannot load --tokenizer {name!r} ({first}); {accepted}") from err
    if len(tok) < MIN_TOKENIZER_SIZE:
        raise MeasureError(f"--tokenizer {name!r} has only {len(tok)} token(s): not a usable tokenizer")
    return tok


def _own_tokenizer(source: str | Path, notes: list[str], *, local_files: bool, **kwargs: Any) -> Any | None:
    """The model's own tokenizer, or None with a note: measuring ids:/random/repeat needs none."""
    from transformers import AutoTokenizer

    folder = Path(source).expanduser()
    if local_files and folder.is_dir() and not has_tokenizer_files(folder):
        notes.append(f"no tokenizer files in {source} (text and hf: inputs need --tokenizer)")
        return None
    try:
        tok = AutoTokenizer.from_pretrained(str(source), **kwargs)
    except TOKENIZER_ERRORS as err:
        notes.append(f"no tokenizer loaded ({type(err).__name__}); text and hf: inputs need --tokenizer")
        return None
    if len(tok) < MIN_TOKENIZER_SIZE:
        notes.append(
            f"the tokenizer of {source} has only {len(tok)} token(s); ignored (text inputs need --tokenizer)"
        )
        return None
    return tok


def load_model(
    model: str | nn.Module,
    *,
    tokenizer: str | Any | None = None,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    device: str = "auto",
    dtype: str | torch.dtype | None = None,
    query_block: int = QUERY_BLOCK,
) -> Loaded:
    """Resolve --model: HF hub id / HF folder (/ GGUF) / sinklab run, model or checkpoint directory."""
    dev = hf.resolve_device(device)
    torch_dtype = hf.resolve_dtype(dtype)
    notes: list[str] = []
    # An explicit --tokenizer is loaded first: a typo there is found before the model loads.
    tok = tokenizer  # None, a tokenizer object, or a folder / hub id to load now
    if isinstance(tokenizer, str | Path):
        tok = load_tokenizer(tokenizer, trust_remote_code=trust_remote_code)
    if isinstance(model, nn.Module):
        name = type(model).__name__
        runner = as_runner(model.to(dev), name=name, query_block=query_block)
    else:
        name = str(model)
        path = Path(model).expanduser()
        sinklab_dir = next((p for p in (path, path / "model") if p.is_dir() and has_sinklab_config(p)), None)
        if sinklab_dir is not None:
            from sinklab.model import load_pretrained

            net = load_pretrained(sinklab_dir).to(device=dev, dtype=torch_dtype).eval()
            runner = hf.RecordRunner(net, name=name)
            if tok is None:
                # run dir: DIR/tokenizer; model dir DIR/model or checkpoint DIR/checkpoints/step_X[/model]
                for cand in (
                    path / "tokenizer",
                    path.parent / "tokenizer",
                    path.parent.parent / "tokenizer",
                    path.parent.parent.parent / "tokenizer",
                ):
                    if (cand / "tokenizer_config.json").exists() or (cand / "tokenizer.json").exists():
                        tok = _own_tokenizer(cand, notes, local_files=True)
                        break
                else:
                    notes.append(
                        "no tokenizer found next to the sinklab model (text inputs need --tokenizer)"
                    )
        else:
            net = hf.load_hf_model(
                name,
                gguf_file=gguf_file,
                trust_remote_code=trust_remote_code,
                allow_pickle=allow_pickle,
                device=dev,
                dtype=torch_dtype,
            )
            runner = hf.prepare_hf(net, name=name, query_block=query_block)
            if tok is None:
                extra = {"gguf_file": gguf_file} if gguf_file else {}
                # A GGUF file carries its tokenizer; a plain folder needs tokenizer files next to the model.
                tok = _own_tokenizer(
                    name, notes, local_files=gguf_file is None, trust_remote_code=trust_remote_code, **extra
                )
    net = runner.model
    emb = net.get_input_embeddings() if hasattr(net, "get_input_embeddings") else None
    vocab = int(emb.num_embeddings) if emb is not None else int(getattr(net.config, "vocab_size", 0))
    if not vocab and tok is not None:
        vocab = len(tok)
    draw = min(vocab, len(tok)) if tok is not None else vocab
    bos_id = getattr(tok, "bos_token_id", None) if tok is not None else None
    if bos_id is None:
        cfg = getattr(net, "config", None)
        bos_id = getattr(cfg, "bos_token_id", None)
    if runner.backend == hf.BACKEND_EAGER:
        notes.append(
            f"{type(net).__name__} does not route attention through transformers' attention registry: "
            "measured with eager attention and output_attentions (one batch's maps in memory at a time)"
        )
    return Loaded(
        runner=runner, tokenizer=tok, name=name, vocab_size=vocab, bos_id=bos_id, notes=notes, draw_size=draw
    )


def _learned_position_table(net: nn.Module) -> nn.Embedding | None:
    """An HF model's absolute position table (GPT-2 `wpe`, OPT `embed_positions`): no row past its end."""
    tokens = net.get_input_embeddings() if hasattr(net, "get_input_embeddings") else None
    for name, module in net.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        positional = leaf == "wpe" or "position" in leaf
        if isinstance(module, nn.Embedding) and module is not tokens and positional:
            return module
    return None


def check_length(runner: ModelRunner, length: int) -> str | None:
    """--length against the model's positions: an error where a learned position table ends (no position
    past it exists), a warning (returned) where RoPE & co. would run on positions never trained."""
    net = runner.model
    cfg = getattr(net, "config", None)
    if runner.backend == hf.BACKEND_SINKLAB:
        context = getattr(cfg, "context", None)
        if context is None:
            return None
        n_sink = 1 if getattr(net, "sink_token", None) is not None else 0  # a sink token takes a position
        if length + n_sink <= context:
            return None
        if getattr(cfg, "position", None) == "learned":
            raise MeasureError(
                f"--length {length} is longer than the model allows: its learned positions cover "
                f"model.context={context} tokens{' (one is its sink token)' if n_sink else ''}; "
                f"use --length {context - n_sink} or less"
            )
        return (
            f"--length {length} is longer than model.context={context} the model was built for: "
            f"its {getattr(cfg, 'position', '')} positions past {context} were never trained"
        )
    text_cfg = cfg.get_text_config() if cfg is not None and hasattr(cfg, "get_text_config") else cfg
    limit = getattr(text_cfg, "max_position_embeddings", None)
    table = _learned_position_table(net)
    if table is not None:
        limit = int(limit) if limit else int(table.num_embeddings)
        if length > limit:
            raise MeasureError(
                f"--length {length} is longer than the model allows: its learned position table has "
                f"{limit} positions (max_position_embeddings / n_positions); use --length {limit} or less"
            )
        return None
    if limit and length > int(limit):
        return (
            f"--length {length} is past the model's max_position_embeddings={limit}: positions beyond it "
            "were never trained (RoPE and the like run on them without failing), so the result may not "
            "show how the model behaves"
        )
    return None


def measure(
    model: str | nn.Module,
    input: str = "random",
    config: MeasureConfig | None = None,
    *,
    out: str | Path | None = None,
    analyses: bool = True,
    plots: bool = True,
    **options: Any,
) -> MeasureResult:
    """Measure the paper's sink metric (and the Sec. 3 analyses) of `model` on `input`; see the CLI.

    `config` (a MeasureConfig) or its fields as keyword `options` (length=, samples=, eps=, ...): every
    option, the form of `input` and `out` are checked before the model loads; `out` is created then and
    removed again (if still empty) when the measurement fails or is interrupted."""
    cfg = make_config(config, options)
    check_spec(input)
    out_path = Path(out).expanduser() if out is not None else None
    created = prepare_out(out_path) if out_path is not None else None
    try:
        res = _measure(model, input, cfg, analyses)
        if out_path is not None:
            res.written = [str(p) for p in write_outputs(res, out_path, plots=plots)]
            res.out = str(out)
    except BaseException:  # Ctrl-C included: an --out made for this run and still empty goes again
        if out_path is not None:
            remove_created(created, out_path)
        raise
    return res


def make_config(config: MeasureConfig | None, options: dict[str, Any]) -> MeasureConfig:
    """`config` with `options` (MeasureConfig fields) on top; validated."""
    if config is None:
        return MeasureConfig(**options)
    return replace(config, **options) if options else config


def load_for(model: str | nn.Module, cfg: MeasureConfig, command: str) -> Loaded:
    """Load `model` as `cfg` says and warn (stderr and notes) when cfg.length is past its positions."""
    loaded = load_model(
        model,
        tokenizer=cfg.tokenizer,
        gguf_file=cfg.gguf_file,
        trust_remote_code=cfg.trust_remote_code,
        allow_pickle=cfg.allow_pickle,
        device=cfg.device,
        dtype=cfg.dtype,
        query_block=cfg.query_block,
    )
    warning = check_length(loaded.runner, cfg.length)
    if warning is not None:
        print(f"sinklab {command}: warning: {warning}", file=sys.stderr)
        loaded.notes.append(warning)
    return loaded


def inputs_for(input: str, loaded: Loaded, cfg: MeasureConfig) -> Any:
    """The token ids (cfg.samples x cfg.length) of `input` for a loaded model."""
    return load_inputs(
        input,
        tokenizer=loaded.tokenizer,
        length=cfg.length,
        samples=cfg.samples,
        bos=cfg.bos,
        vocab_size=loaded.vocab_size,
        bos_id=loaded.bos_id,
        draw_size=loaded.draw_size,
    )


def _measure(model: str | nn.Module, input: str, cfg: MeasureConfig, analyses: bool) -> MeasureResult:
    loaded = load_for(model, cfg, "measure")
    runner = loaded.runner
    inputs = inputs_for(input, loaded, cfg)
    eps, batch_size = cfg.eps_list, cfg.batch_size
    maps = HeadMapRecord()
    result = _record_result(runner, inputs.ids, batch_size, analyses, cfg.query_block, cfg.progress, maps)
    metrics = build_metrics(result, eps)
    alpha_first = result.alpha[..., 0].mean(axis=0)  # (L, H)
    layer, head = (int(i) for i in np.unravel_index(int(np.argmax(alpha_first)), alpha_first.shape))
    param = next(runner.model.parameters())
    return MeasureResult(
        model=loaded.name,
        samples=int(result.samples),
        length=int(inputs.ids.shape[1]),
        skipped=inputs.skipped,
        epsilon=eps[0],
        sink_percent=metrics["sink_percent"],
        sink_percent_by_eps=metrics["sink_percent_by_eps"],
        alpha=metrics["alpha"],
        sink_percent_by_layer=metrics["sink_percent_by_layer"],
        mean_first_alpha=metrics["mean_first_alpha"],
        analyses=jsonable(metrics["analyses"]),
        backend=runner.backend,
        input=input,
        bos=cfg.bos,
        dtype=str(param.dtype).removeprefix("torch."),
        device=str(param.device),
        requested_samples=inputs.requested,
        strongest_head={
            "layer": layer,
            "head": head,
            "alpha_1": float(alpha_first[layer, head]),
            "map_samples": int(min(MAP_SAMPLES, inputs.ids.shape[0])),
        },
        raw=jsonable(metrics.get("raw")),
        slot=jsonable(metrics.get("slot")),
        notes=loaded.notes + inputs.notes,
        head_map=maps.mean_map(layer, head),
    )
