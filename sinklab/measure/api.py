"""Python API of `sinklab measure`.

    import sinklab
    result = sinklab.measure("path/or/hub-id", "text:docs.txt", length=64, samples=100, eps=(0.3, 0.5))
    result.sink_percent[0]          # Sink_1 in percent at the first eps

`measure_token_ids(model, ids, ...)` is the lower-level entry (used by training-time evaluation): any
model whose forward takes `record=` (sinklab's SinkLM) or any HF causal LM, on given token ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sinklab.measure import hf
from sinklab.measure.analysis import build_metrics, jsonable
from sinklab.measure.metrics import DEFAULT_EPS, proxy_normalize
from sinklab.measure.record import QUERY_BLOCK, AttentionRecord, RecordResult

MAP_SAMPLES = 4  # samples in the second pass that recomputes the strongest head's full map


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
    head_map: np.ndarray | None = field(default=None, repr=False)  # (T, T) mean map of the strongest head

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("head_map")
        d.pop("out")
        return jsonable(d)


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
    runner: Any, ids: torch.Tensor, record: AttentionRecord, batch_size: int, progress: bool = False
) -> AttentionRecord:
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
    runner: Any, ids: torch.Tensor, batch_size: int, analyses: bool, query_block: int, progress: bool
) -> RecordResult:
    record = AttentionRecord(analyses=analyses, query_block=query_block)
    return record_ids(runner, ids, record, batch_size, progress).result()


@dataclass
class HeadMapRecord(AttentionRecord):
    """Keeps the mean full (T, T) map of one (layer, head) and nothing else: the second, small pass."""

    layer: int = 0
    head: int = 0
    total: torch.Tensor | None = None
    count: int = 0

    def wants_layer(self, layer: int) -> bool:
        return layer == self.layer

    def start_batch(self, batch_size: int, seq_len: int) -> None:
        self._batch, self._seq_len = batch_size, seq_len
        if self.total is None:
            self.total = torch.zeros(seq_len, seq_len, dtype=torch.float64)

    def add_weights(
        self,
        layer: int,
        weights: torch.Tensor,
        query_start: int = 0,
        *,
        slot: torch.Tensor | None = None,
        normalized: bool = True,
    ) -> None:
        if layer != self.layer or self.total is None:
            return
        w = weights[:, self.head].float()
        if not normalized:
            w = proxy_normalize(w, slot[:, self.head].float() if slot is not None else None)
        # A causal block may hand over only the keys it can see (w.shape[-1] <= T); the rest stay zero.
        self.total[query_start : query_start + w.shape[1], : w.shape[-1]] += w.sum(0).double().cpu()

    def add_qkv(self, *args: Any, **kwargs: Any) -> None:
        return None

    def add_hidden(self, *args: Any, **kwargs: Any) -> None:
        return None

    def end_batch(self) -> None:
        self.count += self._batch

    def mean_map(self) -> np.ndarray:
        if self.total is None or not self.count:
            raise RuntimeError("no attention map was recorded")
        return (self.total / self.count).numpy()


def strongest_head_map(runner: Any, ids: torch.Tensor, layer: int, head: int, batch_size: int) -> np.ndarray:
    record = HeadMapRecord(analyses=False, layer=layer, head=head)
    record_ids(runner, ids, record, batch_size)
    return record.mean_map()


# ---- loading any model --------------------------------------------------------------------------
@dataclass
class Loaded:
    runner: Any
    tokenizer: Any | None
    name: str
    vocab_size: int
    bos_id: int | None
    notes: list[str] = field(default_factory=list)


def _sinklab_dir(path: Path) -> bool:
    """A sinklab model folder (config.json with "format": "sinklab"), even a broken one, so that its own
    loader reports what is wrong instead of transformers."""
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("format") == "sinklab"
    except (json.JSONDecodeError, AttributeError, OSError):
        return False


def _load_tokenizer(source: str | Path, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(source), **kwargs)


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
    tok = tokenizer if tokenizer is not None and not isinstance(tokenizer, (str, Path)) else None
    if isinstance(model, nn.Module):
        name = type(model).__name__
        runner = as_runner(model.to(dev), name=name, query_block=query_block)
    else:
        name = str(model)
        path = Path(model).expanduser()
        sinklab_dir = next((p for p in (path, path / "model") if p.is_dir() and _sinklab_dir(p)), None)
        if sinklab_dir is not None:
            from sinklab.model import load_pretrained

            net = load_pretrained(sinklab_dir).to(device=dev, dtype=torch_dtype).eval()
            runner = hf.RecordRunner(net, name=name)
            if tok is None and tokenizer is None:
                # run dir: DIR/tokenizer; model dir DIR/model or checkpoint DIR/checkpoints/step_X[/model]
                for cand in (
                    path / "tokenizer",
                    path.parent / "tokenizer",
                    path.parent.parent / "tokenizer",
                    path.parent.parent.parent / "tokenizer",
                ):
                    if (cand / "tokenizer_config.json").exists() or (cand / "tokenizer.json").exists():
                        tok = _load_tokenizer(cand)
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
            if tok is None and tokenizer is None:
                try:
                    extra = {"gguf_file": gguf_file} if gguf_file else {}
                    tok = _load_tokenizer(name, trust_remote_code=trust_remote_code, **extra)
                except (OSError, ValueError, TypeError) as err:
                    notes.append(f"no tokenizer loaded ({type(err).__name__}); text inputs need --tokenizer")
    if tok is None and isinstance(tokenizer, (str, Path)):
        tok = _load_tokenizer(tokenizer, trust_remote_code=trust_remote_code)
    net = runner.model
    emb = net.get_input_embeddings() if hasattr(net, "get_input_embeddings") else None
    vocab = int(emb.num_embeddings) if emb is not None else int(getattr(net.config, "vocab_size", 0))
    if tok is not None:
        vocab = min(vocab, len(tok)) if vocab else len(tok)
    bos_id = getattr(tok, "bos_token_id", None) if tok is not None else None
    if bos_id is None:
        cfg = getattr(net, "config", None)
        bos_id = getattr(cfg, "bos_token_id", None)
    if runner.backend == hf.BACKEND_EAGER:
        notes.append(
            f"{type(net).__name__} does not route attention through transformers' attention registry: "
            "measured with eager attention and output_attentions (one batch's maps in memory at a time)"
        )
    return Loaded(runner=runner, tokenizer=tok, name=name, vocab_size=vocab, bos_id=bos_id, notes=notes)


def measure(
    model: str | nn.Module,
    input: str = "random",
    length: int = 64,
    samples: int = 100,
    eps: Sequence[float] = (DEFAULT_EPS,),
    bos: str = "auto",
    batch_size: int = 8,
    device: str = "auto",
    dtype: str | torch.dtype | None = None,
    out: str | Path | None = None,
    *,
    tokenizer: str | Any | None = None,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    analyses: bool = True,
    plots: bool = True,
    query_block: int = QUERY_BLOCK,
    progress: bool = False,
) -> MeasureResult:
    """Measure the paper's sink metric (and the Sec. 3 analyses) of `model` on `input`; see the CLI."""
    from sinklab.measure.inputs import load_inputs

    eps = [float(e) for e in (eps if isinstance(eps, Sequence) else [eps])]
    if not eps:
        raise ValueError("at least one eps is needed")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if query_block < 1:
        raise ValueError(f"query block must be >= 1 query, got {query_block}")
    loaded = load_model(
        model,
        tokenizer=tokenizer,
        gguf_file=gguf_file,
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
        device=device,
        dtype=dtype,
        query_block=query_block,
    )
    inputs = load_inputs(
        input,
        tokenizer=loaded.tokenizer,
        length=length,
        samples=samples,
        bos=bos,
        vocab_size=loaded.vocab_size,
        bos_id=loaded.bos_id,
    )
    runner = loaded.runner
    result = _record_result(runner, inputs.ids, batch_size, analyses, query_block, progress)
    metrics = build_metrics(result, eps)
    alpha_first = result.alpha[..., 0].mean(axis=0)  # (L, H)
    layer, head = (int(i) for i in np.unravel_index(int(np.argmax(alpha_first)), alpha_first.shape))
    head_map = strongest_head_map(runner, inputs.ids[:MAP_SAMPLES], layer, head, batch_size)
    param = next(runner.model.parameters())
    res = MeasureResult(
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
        bos=bos,
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
        head_map=head_map,
    )
    if out is not None:
        from sinklab.measure.outputs import write_outputs

        write_outputs(res, Path(out), plots=plots)
        res.out = str(out)
    return res
