"""Outputs stay as they were: metrics.json, ablations.json, the CSVs, the summaries and ablate's report of
fixed tiny models on fixed ids are compared field by field with golden files written before the measuring
path was restructured (issue 23), and written again once after the fused q/k/v and gate/up projections
(issue 25), which move float32 results in their last bits (α by ~1e-8, loss deltas by ~2e-7 nats). Regenerate
only on purpose: SINKLAB_WRITE_GOLDEN=1 pytest this file.

The one allowed difference is the optional sections: measure wrote `"raw": null` / `"slot": null` where a
model has none, and now leaves them out as training always did (docs/metrics.md: absent, or present with
data), so a null in a golden file matches an absent key.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

import sinklab

GOLDEN = Path(__file__).parent / "golden"
WRITE = os.environ.get("SINKLAB_WRITE_GOLDEN") == "1"
OPTIONAL = ("raw", "slot", "sink_percent_window")
T, SAMPLES = 16, 6
VARIANTS = {
    "softmax": {},
    "sigmoid": {"attention": {"kernel": "sigmoid", "normalize": False, "sigmoid_bias": -2.0}},
    "sink_token": {"kv_bias": "sink_token"},
}


def _sinklm(folder: Path, **options: Any) -> Path:
    from sinklab.model import AttentionConfig, ModelConfig, SinkLM, save_pretrained

    attention = AttentionConfig(**options.pop("attention", {}))
    cfg = ModelConfig(
        vocab_size=300, context=32, n_layer=2, n_head=2, d_model=32, d_ff=64, attention=attention, **options
    )
    torch.manual_seed(0)
    model = SinkLM(cfg)
    with torch.no_grad():  # larger embeddings than the init gives: sharper attention, a visible sink
        model.embed_tokens.weight.mul_(8.0)
    return save_pretrained(model, folder)


def _ids_file(path: Path) -> Path:
    ids = torch.randint(3, 300, (SAMPLES, T), generator=torch.Generator().manual_seed(1))
    path.write_text("".join(json.dumps({"input_ids": row}) + "\n" for row in ids.tolist()))
    return path


def _numbers(row: str) -> list[float] | None:
    try:
        return [float(cell) for cell in row.split(",")]
    except ValueError:
        return None


def _same(new: Any, old: Any, where: str) -> None:
    if isinstance(old, dict):
        assert isinstance(new, dict), where
        for key in set(old) | set(new):
            if key in OPTIONAL and old.get(key) is None and new.get(key) is None:
                continue
            assert key in new and key in old, f"{where}.{key}: in one document only"
            _same(new[key], old[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), where
        for i, (a, b) in enumerate(zip(new, old, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(old, float) and isinstance(new, float):
        assert math.isclose(new, old, rel_tol=1e-6, abs_tol=1e-9), f"{where}: {new} != {old}"
    elif isinstance(old, str) and isinstance(new, str) and "," in old and _numbers(old) is not None:
        # a CSV row: cell by cell, numbers within the tolerance above
        assert _numbers(new) is not None and len(_numbers(new)) == len(_numbers(old)), where
        for i, (a, b) in enumerate(zip(_numbers(new), _numbers(old), strict=True)):
            _same(a, b, f"{where}[{i}]")
    else:
        assert new == old, f"{where}: {new!r} != {old!r}"


def _check(name: str, value: Any) -> None:
    path = GOLDEN / name
    if WRITE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")
        return
    _same(json.loads(json.dumps(value)), json.loads(path.read_text()), name)


def _files(out: Path, tmp: Path, names: list[str]) -> dict[str, Any]:
    """The outputs, machine paths replaced (the model folder lives in a temporary directory)."""
    found = {}
    for n in names:
        text = (out / n).read_text().replace(str(tmp), "TMP")
        found[n] = json.loads(text) if n.endswith(".json") else text.splitlines()
    return found


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("golden")
    _ids_file(tmp / "ids.jsonl")
    for variant, options in VARIANTS.items():
        _sinklm(tmp / variant, **dict(options))
    from sinklab.measure.make_tiny import make_tiny

    make_tiny("llama", tmp / "hf_llama", seed=0)
    return tmp, tmp / "ids.jsonl"


@pytest.mark.parametrize("variant", [*VARIANTS, "hf_llama"])
def test_measure_outputs_unchanged(folders: tuple[Path, Path], variant: str) -> None:
    from sinklab.measure.outputs import summary

    tmp, ids = folders
    out = tmp / f"measure_{variant}"
    result = sinklab.measure_model(
        str(tmp / variant),
        f"ids:{ids}",
        length=T,
        samples=SAMPLES,
        eps=(0.3, 0.5),
        batch_size=4,
        out=out,
        plots=False,
    )
    files = _files(out, tmp, ["metrics.json", "sink_percent.csv", "alpha.csv", "sink_percent_by_layer.csv"])
    files["summary"] = summary(result).replace(str(tmp), "TMP").splitlines()
    _check(f"measure_{variant}.json", files)


@pytest.mark.parametrize("variant", [*VARIANTS, "hf_llama"])
def test_ablate_outputs_unchanged(folders: tuple[Path, Path], variant: str) -> None:
    from sinklab.ablate.outputs import summary

    tmp, ids = folders
    out = tmp / f"ablate_{variant}"
    result = sinklab.ablate_model(
        str(tmp / variant),
        f"ids:{ids}",
        None,
        length=T,
        samples=SAMPLES,
        batch_size=4,
        massive_threshold=2.0,
        window=4,
        out=out,
        plots=False,
    )
    names = ["ablations.json", "ablations.csv", "loss_by_position.csv", "report.html"]
    files = _files(out, tmp, names)
    files["summary"] = summary(result).replace(str(tmp), "TMP").splitlines()
    _check(f"ablate_{variant}.json", files)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_training_metrics_unchanged(folders: tuple[Path, Path], variant: str) -> None:
    """Training's final metrics.json and measure_token_ids on the same model and ids."""
    from sinklab.measure.api import measure_token_ids
    from sinklab.model import load_pretrained
    from sinklab.train import evaluate

    tmp, ids_file = folders
    ids = torch.tensor([json.loads(line)["input_ids"] for line in ids_file.read_text().splitlines()])
    model = load_pretrained(tmp / variant).eval()
    result = evaluate.record_sink(model, ids, 4, contextlib.nullcontext, analyses=True)
    document = evaluate.metrics_json(result, (0.3, 0.5), "run", window=4)
    token_ids = measure_token_ids(model, ids, eps=(0.3, 0.5), batch_size=4)
    if WRITE:
        _check(f"train_{variant}.json", {"metrics.json": document, "measure_token_ids": token_ids})
        return
    golden = json.loads((GOLDEN / f"train_{variant}.json").read_text())
    _same(json.loads(json.dumps(document)), golden["metrics.json"], "metrics.json")
    # measure_token_ids wrote a third dict (no schema, model, skipped or epsilon); now the one document
    # training writes too, less the window section of windowed runs.
    old = golden["measure_token_ids"]
    _same({k: v for k, v in token_ids.items() if k in old}, old, "measure_token_ids")
    assert set(token_ids) == set(document) - {"sink_percent_window"}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_measure_and_training_write_the_same_keys(folders: tuple[Path, Path], variant: str) -> None:
    """`sinklab measure` and training's final evaluation on the same model and ids: one metrics.json, the
    same keys apart from those docs/metrics.md names as measure's own."""
    from sinklab.model import load_pretrained
    from sinklab.train import evaluate

    tmp, ids_file = folders
    doc = (Path(__file__).parents[1] / "docs" / "metrics.md").read_text()
    row = next(line for line in doc.splitlines() if "`sinklab measure` only" in line)
    measure_own = set(row.split("|")[1].replace("`", "").replace(" ", "").split(","))
    out = tmp / f"keys_{variant}"
    sinklab.measure_model(
        str(tmp / variant), f"ids:{ids_file}", length=T, samples=SAMPLES, out=out, plots=False
    )
    measured = json.loads((out / "metrics.json").read_text())
    ids = torch.tensor([json.loads(line)["input_ids"] for line in ids_file.read_text().splitlines()])
    result = evaluate.record_sink(
        load_pretrained(tmp / variant).eval(), ids, 4, contextlib.nullcontext, analyses=True
    )
    trained = evaluate.metrics_json(result, (0.3,), "run")
    assert set(measured) - measure_own == set(trained)
    assert ("raw" in measured) == ("raw" in trained) == (variant == "sigmoid")
    assert ("slot" in measured) == ("slot" in trained) == (variant == "sink_token")
