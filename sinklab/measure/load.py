"""Loading what `sinklab measure` and `sinklab ablate` run: `--model` (a Hugging Face hub id or folder, a GGUF
file, a sinklab run / model / checkpoint directory, or a model object) as a runner, and its tokenizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from sinklab.measure import hf
from sinklab.measure.checks import MeasureError, has_sinklab_config, looks_like_path
from sinklab.measure.config import MeasureConfig, make_config
from sinklab.model import SinkLM, load_pretrained
from sinklab.model.runner import SinkLMRunner
from sinklab.observe import BACKEND_EAGER, QUERY_BLOCK, ModelRunner

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

    def vocabulary(self) -> dict[str, Any]:
        """What reading the inputs needs from the model (load_inputs' keywords)."""
        keys = ("tokenizer", "vocab_size", "bos_id", "draw_size")
        return {k: getattr(self, k) for k in keys}


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


def load_model(model: str | nn.Module, config: MeasureConfig | None = None, **options: Any) -> Loaded:
    """Resolve --model (HF hub id / HF folder (/ GGUF) / sinklab run, model or checkpoint directory, or a
    model object) as `config` (or its fields as `options`: device=, dtype=, tokenizer=, ...) says."""
    cfg = make_config(config, options)
    dev = hf.resolve_device(cfg.device)
    torch_dtype = hf.resolve_dtype(cfg.dtype)
    query_block, trust_remote_code, gguf_file = cfg.query_block, cfg.trust_remote_code, cfg.gguf_file
    notes: list[str] = []
    # An explicit --tokenizer is loaded first: a typo there is found before the model loads.
    tok = cfg.tokenizer  # None, a tokenizer object, or a folder / hub id to load now
    if isinstance(tok, str | Path):
        tok = load_tokenizer(tok, trust_remote_code=trust_remote_code)
    if isinstance(model, nn.Module):
        name = type(model).__name__
        runner = as_runner(model.to(dev), name=name, query_block=query_block)
    else:
        name = str(model)
        path = Path(model).expanduser()
        sinklab_dir = next((p for p in (path, path / "model") if p.is_dir() and has_sinklab_config(p)), None)
        if sinklab_dir is not None:
            net = load_pretrained(sinklab_dir).to(device=dev, dtype=torch_dtype).eval()
            runner = SinkLMRunner(net, name=name, query_block=query_block)
            if tok is None:
                # run dir: DIR/tokenizer; model dir DIR/model or checkpoint DIR/checkpoints/step_X[/model]
                for cand in [path / "tokenizer", *(p / "tokenizer" for p in path.parents[:3])]:
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
                allow_pickle=cfg.allow_pickle,
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
    notes.extend(path_notes(runner))
    return Loaded(
        runner=runner, tokenizer=tok, name=name, vocab_size=vocab, bos_id=bos_id, notes=notes, draw_size=draw
    )


def path_notes(runner: ModelRunner) -> list[str]:
    """What metrics.json `notes` and the console say about the path a model is measured on: the eager
    fallback and why, and which layers of a hybrid are attention layers."""
    notes = []
    net = runner.model
    model_type = getattr(getattr(net, "config", None), "model_type", None) or type(net).__name__
    if runner.backend == BACKEND_EAGER:
        why = getattr(runner, "fallback_reason", "") or "its attention does not go through the registry"
        notes.append(
            f"{type(net).__name__} (model type {model_type}) cannot use the registered attention function: "
            f"{why}; measured with eager attention and output_attentions instead (one batch's maps in memory "
            "at a time; no q/k/v norms or angles; attention ablations cannot be applied)"
        )
    if getattr(runner, "repeated_layers", False):
        notes.append(
            f"{model_type} calls attention {runner.layers} times in one forward but its attention modules "
            "repeat layer indices (shared layers, or several softmax maps per layer such as differential "
            "attention): each call is measured as a layer of its own, in call order"
        )
    if getattr(runner, "hybrid", False):
        layers = runner.attention_layers
        notes.append(
            f"{model_type} is a hybrid: {len(layers)} of its {runner.model_layers} layers are attention "
            f"layers ({', '.join(map(str, layers))}, the model's own index; `attention_layers` in "
            "metrics.json); only they are measured, the others (recurrent / state-space) have no attention"
        )
    return notes


def attention_labels(runner: ModelRunner) -> list[int] | None:
    """The model's own index of each measured layer, where they are not simply 0, 1, ... (a hybrid's
    attention layers, or a model that skips layers); None otherwise (metrics.json then has no
    `attention_layers`)."""
    layers = getattr(runner, "attention_layers", None)
    if layers is None or (list(layers) == list(range(len(layers))) and not getattr(runner, "hybrid", False)):
        return None
    return [int(i) for i in layers]


def as_runner(model: Any, name: str = "", query_block: int = QUERY_BLOCK) -> ModelRunner:
    """The runner of a SinkLM or an HF causal LM (a runner is returned as it is)."""
    if isinstance(model, ModelRunner):
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch model, got {type(model).__name__}")
    if isinstance(model, SinkLM):
        return SinkLMRunner(model.eval(), name=name, query_block=query_block)
    if hasattr(model, "set_attn_implementation"):
        return hf.prepare_hf(model.eval(), name=name, query_block=query_block)
    raise TypeError(
        f"{type(model).__name__} neither takes `record=` (sinklab model) nor is a transformers model"
    )
