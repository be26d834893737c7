"""`sinklab demo`: softmax vs sigmoid-without-normalisation attention, trained side by side on the embedded
corpus (the Python standard library), with the sink measured as they train, then an HTML + Markdown report.

The paper's headline (Gu et al. 2025, Sec. 7.4): a softmax LM pours attention onto its first token, while
sigmoid attention without normalisation, at a similar loss, does not.
"""

from __future__ import annotations

import argparse
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sinklab.errors import SinklabError
from sinklab.experiments import plots
from sinklab.experiments.claims import RunResult
from sinklab.experiments.suites import RunSpec, Scale, scale_config
from sinklab.io import atomic_write_json, atomic_write_text

PRESET = "demo"
SOFTMAX = RunSpec("softmax", (), "softmax attention (the default)")
# b = -log(C) inside the sigmoid (Ramapuram et al. 2024): with b = 0 the tiny model trains ~0.7 nats worse.
SIGMOID = RunSpec(
    "sigmoid",
    (
        "model.attention.kernel=sigmoid",
        "model.attention.normalize=false",
        "model.attention.sigmoid_bias=-4.158883",
    ),
    "sigmoid attention without normalisation, b = -log 64",
)
# The demo's targets (issue 5): a clear sink for softmax, none for sigmoid, at a similar loss.
SOFTMAX_MIN, SIGMOID_MAX, LOSS_GAP = 10.0, 1.0, 0.3
EPS_CURVES = ("0.1", "0.2", "0.3")
# The mask-sink check at the end (sinklab ablate): 100 evaluation sequences of 64 tokens at most, 3 forwards.
ABLATE_SAMPLES = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)"
    )
    parser.add_argument("--steps", type=int, help="optimizer steps per model (default: the demo preset's)")
    parser.add_argument("--jobs", type=int, default=2, help="models trained at once (default 2)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override for both models (repeatable)",
    )


def demo_scale(steps: int | None = None, extra: tuple[str, ...] = ()) -> Scale:
    base = ("train.threads=1", "train.progress=false", *extra)
    if steps is not None:
        base = (*base, f"train.steps={steps}")
    return Scale(name="demo", preset=PRESET, base=base, lr=0.0, batch_size=0, windows=(0, 0))


def prepare_shared_data(scale: Scale) -> None:
    """Tokenizer and token file once, before two processes would both build the same cache."""
    from sinklab.data.pipeline import prepare_data

    cfg = scale_config(scale)
    prepare_data(cfg.data, batch_size=cfg.train.batch_size, seed=cfg.data_seed)


def run(args: argparse.Namespace) -> int:
    from sinklab.experiments.sweep import run_sweep

    if args.jobs < 1:
        raise ValueError(f"--jobs must be an integer >= 1 (models trained at once), got {args.jobs}")
    scale = demo_scale(args.steps, tuple(args.overrides))
    scale_config(scale)  # every override checked before the banner and the data preparation
    out: Path = args.out
    print(f"sinklab demo: training a softmax and a sigmoid (no normalisation) model side by side -> {out}")
    print(
        "  corpus: the Python standard library of this interpreter (no download); "
        "every sequence starts with the same BOS token (the sink appears sooner at this tiny scale)"
    )
    prepare_shared_data(scale)
    outcome = run_sweep([SOFTMAX, SIGMOID], scale, out, jobs=args.jobs)
    if outcome.failed:
        raise SinklabError(
            "training failed: " + ", ".join(f"{n} (log: {p})" for n, p in outcome.failed.items())
        )
    summary = write_demo_report(out)
    print(summary.verdict_text)
    if summary.mask_sink_text:
        print(summary.mask_sink_text)
    print(f"report: {out / 'report.html'} and {out / 'report.md'}")
    return 0


@dataclass
class DemoSummary:
    softmax_sink: float
    sigmoid_sink: float
    sigmoid_sink_raw: float | None
    softmax_loss: float
    sigmoid_loss: float
    shows_claim: bool
    verdict_text: str
    # mask-sink (key 1 masked in every head, sinklab ablate) per model: {"mean", "ci_low", "ci_high", ...}
    mask_sink: dict[str, dict[str, Any]] | None = None
    mask_sink_text: str = ""


def _eps_value(h: dict[str, Any], eps: str) -> float | None:
    by_eps = h.get("sink_percent_by_eps")
    if by_eps and eps in by_eps:
        return by_eps[eps][0]
    return h["sink_percent"][0] if eps == "0.3" and h.get("sink_percent") else None


def summarize(softmax: RunResult, sigmoid: RunResult, sigmoid_raw: float | None) -> DemoSummary:
    gap = abs(softmax.val_loss - sigmoid.val_loss)
    ok = softmax.sink(1) >= SOFTMAX_MIN and sigmoid.sink(1) <= SIGMOID_MAX and gap <= LOSS_GAP
    text = (
        f"softmax: Sink_1 = {softmax.sink(1):.1f}% of heads (eps 0.3), "
        f"validation loss {softmax.val_loss:.3f}\n"
        f"sigmoid: Sink_1* = {sigmoid.sink(1):.1f}% (rows normalised as the paper's proxy), "
        f"validation loss {sigmoid.val_loss:.3f}\n"
        + (
            "verdict: the softmax model develops a first-token attention sink and the sigmoid model without "
            f"normalisation does not, at a loss {gap:.2f} nats apart - as the paper reports."
            if ok
            else f"verdict: not shown at these settings (targets: softmax >= {SOFTMAX_MIN:g}%, sigmoid <= "
            f"{SIGMOID_MAX:g}%, losses within {LOSS_GAP} nats); train longer with --steps."
        )
    )
    return DemoSummary(
        softmax.sink(1), sigmoid.sink(1), sigmoid_raw, softmax.val_loss, sigmoid.val_loss, ok, text
    )


def mask_sink_effect(run_dir: Path) -> dict[str, Any]:
    """Δ loss (nats, 95 % interval) of masking key 1 in every head, on the run's own evaluation sequences,
    with Sink_1 (ε 0.3) before and after: the ablate API, as `sinklab ablate --ablations mask-sink`."""
    from sinklab.ablate.api import ablate

    eval_set = run_dir / "eval_set.jsonl"
    lines = eval_set.read_text().splitlines()
    length = len(json.loads(lines[0])["input_ids"])
    result = ablate(
        str(run_dir),
        f"ids:{eval_set}",
        ["mask-sink"],
        length=length,
        samples=min(len(lines), ABLATE_SAMPLES),
        batch_size=25,
        plots=False,
    )
    row = result.row("mask-sink")
    return {
        **row.delta.to_dict(),
        "loss": row.loss,
        "baseline_loss": result.baseline.loss,
        "sink_1_before": result.baseline.sink_percent["0.3"][0],
        "sink_1_after": row.sink_percent["0.3"][0],
        "length": result.length,
    }


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"


def mask_sink_line(effects: dict[str, dict[str, Any]]) -> str:
    """One sentence: what masking the sink costs each model (the interval says whether it is beyond noise)."""

    def part(name: str) -> str:
        e = effects[name]
        low, high = e["ci_low"], e["ci_high"]
        interval = f" [{_signed(low)}, {_signed(high)}]" if low is not None else ""
        return f"the {name} model's loss by {_signed(e['mean'])} nats{interval}"

    e = effects["softmax"]
    return (
        f"masking the sink (mask-sink: key 1 hidden from every head, {e['n']} x {e['length']} tokens) "
        f"changes {part('softmax')} and {part('sigmoid')} (95 % intervals)"
    )


def write_demo_report(out: Path) -> DemoSummary:
    """Figures, report.md, report.html and summary.json from the two finished runs under OUT/runs."""
    runs = {}
    for spec in (SOFTMAX, SIGMOID):
        result = RunResult.load(out / "runs" / spec.name)
        if result is None:
            raise FileNotFoundError(f"{out / 'runs' / spec.name} has not finished (no metrics.json)")
        runs[spec.name] = result
    metrics = {n: json.loads((out / "runs" / n / "metrics.json").read_text()) for n in runs}
    raw = (metrics["sigmoid"].get("raw") or {}).get("sink_percent")
    summary = summarize(runs["softmax"], runs["sigmoid"], raw[0] if raw else None)
    summary.mask_sink = {n: mask_sink_effect(out / "runs" / n) for n in runs}
    summary.mask_sink_text = mask_sink_line(summary.mask_sink)
    figures = out / "figures"
    histories = {n: r.history for n, r in runs.items()}
    images: list[tuple[str, Path]] = []
    images.append(
        (
            "Sink_1 during training at ε = 0.1 / 0.2 / 0.3",
            _eps_curves(histories, figures / "sink1_by_eps.png"),
        )
    )
    images.append(
        (
            "Mean first-token attention α_1",
            plots.curves(
                histories,
                lambda h: h.get("mean_first_alpha"),
                "mean α_1",
                "mean first-token attention",
                figures / "mean_first_alpha.png",
            ),
        )
    )
    images.append(
        (
            "Validation loss",
            plots.curves(
                histories,
                lambda h: h.get("val_loss"),
                "validation loss (nats)",
                "validation loss",
                figures / "val_loss.png",
            ),
        )
    )
    images.append(
        ("Sink_1 per layer during training", _layer_curves(histories, figures / "sink1_by_layer.png"))
    )
    for name in runs:
        alpha = np.asarray(metrics[name]["alpha"])[:, :, 0]
        images.append(
            (
                f"{name}: first-token α_1 by layer × head",
                plots.heatmap(alpha, f"{name}: α_1 (layer × head)", figures / f"alpha1_{name}.png"),
            )
        )
    for name in runs:
        image = _attention_map(out / "runs" / name, figures / f"attention_map_{name}.png", name)
        if image is not None:
            images.append((f"{name}: mean attention map of its strongest first-token head", image))
    atomic_write_json(out / "summary.json", summary.__dict__)
    atomic_write_text(out / "report.md", _markdown(summary, runs, images, out))
    atomic_write_text(out / "report.html", _html(summary, runs, images))
    return summary


def _eps_curves(histories: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    styles = {"0.1": ":", "0.2": "--", "0.3": "-"}
    for colour, (name, history) in zip(("C0", "C3"), histories.items(), strict=False):
        for eps, style in styles.items():
            points = [(h["step"], v) for h in history if (v := _eps_value(h, eps)) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, style, color=colour, label=f"{name}, ε = {eps}")
    ax.set(xlabel="step", ylabel="Sink_1 (%)", title="first-token sink during training")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return plots.save_png(fig, path)


def _layer_curves(histories: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    plt = plots._plt()
    fig, axes = plt.subplots(1, len(histories), figsize=(5 * len(histories), 3.2), sharey=True, squeeze=False)
    for ax, (name, history) in zip(axes[0], histories.items(), strict=True):
        layers = len(history[-1].get("sink_percent_by_layer", []))
        for layer in range(layers):
            ax.plot(
                [h["step"] for h in history],
                [h["sink_percent_by_layer"][layer][0] for h in history],
                label=f"layer {layer + 1}",
            )
        ax.set(xlabel="step", ylabel="Sink_1 (%)", title=name, ylim=(0, 100))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return plots.save_png(fig, path)


def _attention_map(run_dir: Path, path: Path, name: str) -> Path | None:
    """The strongest first-token head's mean map, recomputed on a few evaluation sequences."""
    from sinklab.measure.api import measure

    eval_set = run_dir / "eval_set.jsonl"
    length = len(json.loads(eval_set.read_text().splitlines()[0])["input_ids"])
    result = measure(str(run_dir), f"ids:{eval_set}", length=length, samples=8, plots=False, analyses=False)
    if result.head_map is None or result.strongest_head is None:
        return None
    sh = result.strongest_head
    return plots.attention_map(
        np.asarray(result.head_map), f"{name}: layer {sh['layer'] + 1}, head {sh['head'] + 1}", path
    )


_ABLATE_HOW = "sinklab ablate on each run's evaluation sequences, paired with the unablated loss"


def _markdown(
    summary: DemoSummary, runs: dict[str, RunResult], images: list[tuple[str, Path]], out: Path
) -> str:
    lines = [
        "# sinklab demo: softmax vs sigmoid attention",
        "",
        "```",
        summary.verdict_text,
        "```",
        "",
        "| model | Sink_1 (ε 0.3) | Sink_1 per layer | validation loss |",
        "|---|---|---|---|",
    ]
    for name, r in runs.items():
        per_layer = " / ".join(f"{row[0]:.1f}" for row in r.sink_by_layer)
        lines.append(f"| {name} | {r.sink(1):.2f} | {per_layer} | {r.val_loss:.3f} |")
    if summary.sigmoid_sink_raw is not None:
        lines.append(f"\nSigmoid on raw (unnormalised) weights: Sink_1 = {summary.sigmoid_sink_raw:.2f}%.")
    if summary.mask_sink_text:
        lines.append(f"\nAblation ({_ABLATE_HOW}): {summary.mask_sink_text}.")
    lines.append("")
    lines += [f"![{title}]({path.relative_to(out)})" for title, path in images]
    return "\n".join(lines) + "\n"


def _html(summary: DemoSummary, runs: dict[str, RunResult], images: list[tuple[str, Path]]) -> str:
    rows = "".join(
        f"<tr><td>{n}</td><td>{r.sink(1):.2f}</td>"
        f"<td>{' / '.join(f'{row[0]:.1f}' for row in r.sink_by_layer)}</td><td>{r.val_loss:.3f}</td></tr>"
        for n, r in runs.items()
    )
    figs = "".join(
        f"<figure><img src='{plots.png_data_uri(p)}'><figcaption>{html.escape(t)}</figcaption></figure>"
        for t, p in images
    )
    colour = "#1a7f37" if summary.shows_claim else "#9a6700"
    ablation = (
        f"<p>Ablation ({html.escape(_ABLATE_HOW)}): {html.escape(summary.mask_sink_text)}.</p>"
        if summary.mask_sink_text
        else ""
    )
    return f"""<!doctype html><meta charset="utf-8"><title>sinklab demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
figure{{display:inline-block;margin:8px;vertical-align:top}}img{{max-width:520px}}
pre{{background:#f6f8fa;padding:1em;border-left:4px solid {colour}}}</style>
<h1>sinklab demo: softmax vs sigmoid attention</h1>
<pre>{html.escape(summary.verdict_text)}</pre>
<table><tr><th>model</th><th>Sink_1 (ε 0.3, %)</th><th>Sink_1 per layer</th><th>validation loss</th></tr>
{rows}</table>
{ablation}
{figs}
"""
