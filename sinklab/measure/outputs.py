"""What `sinklab measure --out DIR` writes: metrics.json, CSV tables, PNG plots; and the terminal summary."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from sinklab.io import atomic_write, atomic_write_json, atomic_write_text

PLOT_POSITIONS = 16


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_outputs(result: Any, out: Path, plots: bool = True) -> list[Path]:
    """metrics.json + CSVs (+ PNGs); returns the written paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_json(out / "metrics.json", result.to_dict())]
    eps_keys = list(result.sink_percent_by_eps)
    rows = [["position", *[f"sink_percent_eps_{e}" for e in eps_keys]]]
    for k in range(result.length):
        rows.append([k + 1, *[result.sink_percent_by_eps[e][k] for e in eps_keys]])
    written.append(atomic_write_text(out / "sink_percent.csv", _csv(rows)))
    alpha = np.asarray(result.alpha)  # (L, H, T)
    rows = [["layer", "head", *[f"alpha_{k + 1}" for k in range(alpha.shape[2])]]]
    rows += [[l, h, *alpha[l, h].tolist()] for l in range(alpha.shape[0]) for h in range(alpha.shape[1])]
    written.append(atomic_write_text(out / "alpha.csv", _csv(rows)))
    by_layer = np.asarray(result.sink_percent_by_layer)
    rows = [["layer", *[f"sink_percent_{k + 1}" for k in range(by_layer.shape[1])]]]
    rows += [[l, *by_layer[l].tolist()] for l in range(by_layer.shape[0])]
    written.append(atomic_write_text(out / "sink_percent_by_layer.csv", _csv(rows)))
    rows = [["quantity", "layer", *[f"pos_{k + 1}" for k in range(result.length)]]]
    for name in ("hidden_norm", "key_norm", "value_norm", "query_norm", "cos_first_key", "cos_other_keys"):
        table = result.analyses.get(name)
        if table is not None:
            rows += [[name, l, *row] for l, row in enumerate(table)]
    if len(rows) > 1:
        written.append(atomic_write_text(out / "analyses.csv", _csv(rows)))
    if plots:
        written += _plots(result, out)
    return written


def _savefig(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def _plots(result: Any, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    alpha = np.asarray(result.alpha)
    fig, ax = plt.subplots(figsize=(max(4, alpha.shape[1] * 0.4 + 2), max(3, alpha.shape[0] * 0.3 + 1.5)))
    im = ax.imshow(alpha[:, :, 0], aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set(xlabel="head", ylabel="layer", title=r"first-token importance $\alpha_1$")
    fig.colorbar(im, ax=ax)
    paths.append(_savefig(fig, out / "alpha_first_heatmap.png"))

    n = min(PLOT_POSITIONS, result.length)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    keys = list(result.sink_percent_by_eps)
    width = 0.8 / len(keys)
    for i, e in enumerate(keys):
        ax.bar(
            np.arange(1, n + 1) + (i - (len(keys) - 1) / 2) * width,
            result.sink_percent_by_eps[e][:n],
            width=width,
            label=f"ε = {e}",
        )
    ax.set(xlabel="key position k", ylabel=r"Sink$_k^\epsilon$ (%)", ylim=(0, 100), title="Sink by position")
    ax.legend()
    paths.append(_savefig(fig, out / "sink_positions.png"))

    if result.head_map is not None and result.strongest_head is not None:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        masked = np.ma.masked_where(np.triu(np.ones_like(result.head_map), 1) > 0, result.head_map)
        im = ax.imshow(masked, cmap="magma", vmin=0, vmax=1)
        sh = result.strongest_head
        ax.set(
            xlabel="key",
            ylabel="query",
            title=f"mean map, layer {sh['layer']} head {sh['head']} ({sh['map_samples']} samples)",
        )
        fig.colorbar(im, ax=ax)
        paths.append(_savefig(fig, out / "strongest_head_map.png"))

    norm_tables = [(k, result.analyses.get(k)) for k in ("hidden_norm", "key_norm", "value_norm")]
    norm_tables = [(k, np.asarray(t, dtype=float)) for k, t in norm_tables if t is not None]
    if norm_tables:
        fig, axes = plt.subplots(1, len(norm_tables), figsize=(4.2 * len(norm_tables), 3.2), squeeze=False)
        for ax, (name, table) in zip(axes[0], norm_tables, strict=True):
            for l, row in enumerate(table):
                ax.plot(
                    np.arange(1, len(row) + 1),
                    row,
                    label=f"{'emb' if name == 'hidden_norm' and l == 0 else l}",
                )
            ax.set(xlabel="position", ylabel="ℓ2 norm", title=name.replace("_", " "), yscale="log")
        axes[0][0].legend(fontsize=6, title="layer", title_fontsize=7)
        paths.append(_savefig(fig, out / "norms.png"))
    return paths


def summary(result: Any) -> str:
    """A few lines for the terminal."""
    lines = [f"model: {result.model}   backend: {result.backend}   {result.dtype} on {result.device}"]
    lines.append(
        f"input: {result.input}   samples: {result.samples} of {result.requested_samples} asked   "
        f"length: {result.length}   skipped: {result.skipped}"
    )
    for e, values in result.sink_percent_by_eps.items():
        top = ", ".join(f"Sink_{k + 1}={values[k]:.2f}%" for k in range(min(4, len(values))))
        lines.append(f"ε = {e}: {top}   (heads sinking on the first token)")
    lines.append(f"mean α_1 over layers and heads: {result.mean_first_alpha:.4f}")
    if result.strongest_head:
        sh = result.strongest_head
        lines.append(
            f"strongest first-token head: layer {sh['layer']} head {sh['head']} (α_1 = {sh['alpha_1']:.3f})"
        )
    ratio = result.analyses.get("massive_activation_ratio")
    if ratio:
        finite = [(r, i) for i, r in enumerate(ratio) if r is not None]
        if finite:
            r, i = max(finite)
            lines.append(f"massive activation: ||h_1|| / median ||h_t|| peaks at {r:.1f}x (hidden state {i})")
    if result.slot:
        lines.append(f"sink slot / sink logit: mean α = {result.slot['mean_alpha']:.4f}")
    lines += [f"note: {n}" for n in result.notes]
    if result.out:
        lines.append(f"wrote {result.out}/metrics.json, CSVs and plots")
    return "\n".join(lines)
