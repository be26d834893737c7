"""sinklab.plots: every figure draws on small inputs and is written as a PNG, atomically; nothing imports
pyplot (a caller's backend stays as it was)."""

from __future__ import annotations

import base64
import inspect
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from sinklab import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RNG = np.random.default_rng(0)


def _delta(mean: float, low: float | None, high: float | None) -> SimpleNamespace:
    return SimpleNamespace(mean=mean, low=low, high=high)


def _ablation_row(label: str, ablation: str, delta: SimpleNamespace | None, status: str = "ok") -> Any:
    n = 12
    return SimpleNamespace(
        label=label,
        ablation=ablation,
        status=status,
        delta=delta,
        params={"window": 4},
        loss_by_position=list(3 + RNG.random(n)),
        loss_by_position_ci=[[2.9, 4.1]] * n,
        delta_by_position=list(RNG.random(n) - 0.5),
        delta_by_position_ci=[[-0.6, 0.6]] * n,
    )


def _history(scale: float) -> list[dict[str, Any]]:
    return [
        {
            "step": s,
            "val_loss": 5 - s / 10,
            "mean_first_alpha": scale * s / 10,
            "sink_percent": [scale * s, 0.0],
            "sink_percent_by_eps": {e: [scale * s * (1 + i)] for i, e in enumerate(("0.3", "0.2", "0.1"))},
            "sink_percent_by_layer": [[0.0], [scale * s]],
        }
        for s in range(0, 10, 2)
    ]


SEEDS = [[(float(s), 10.0 * s + seed) for s in range(5)] for seed in range(3)]
FIGURES: dict[str, Callable[[], Any]] = {
    "alpha_heatmap": lambda: plots.alpha_heatmap(RNG.random((3, 4)), "α_1", annotate=True),
    "attention_map": lambda: plots.attention_map(np.tril(RNG.random((6, 6))), "a map\nsecond line"),
    "sink_by_position": lambda: plots.sink_by_position({"0.3": [50.0, 2.0, 1.0], "0.1": [80.0, 9.0, 3.0]}),
    "norm_panels": lambda: plots.norm_panels(
        {"hidden_norm": 1 + RNG.random((3, 8)) * 50, "key_norm": 1 + RNG.random((2, 8))}
    ),
    "curves": lambda: plots.curves(
        {"softmax": _history(1.0), "sigmoid": _history(0.0)},
        lambda h: h["val_loss"],
        "validation loss (nats)",
        "validation loss",
        log_y=True,
    ),
    "eps_curves": lambda: plots.eps_curves(
        {"softmax": {"0.1": [(0, 1.0), (2, 30.0)], "0.3": [(0, 0.0), (2, 20.0)]}, "sigmoid": {"0.3": []}}
    ),
    "layer_curves": lambda: plots.layer_curves(
        {"softmax": ([0, 2, 4], [[0.0, 0.0, 0.0], [0.0, 30.0, 60.0]]), "sigmoid": ([0, 2], [[0.0, 0.0]])}
    ),
    "claim_figure": lambda: plots.claim_figure(
        {"default": [20.0, 21.0, 19.0], "lr_x2": [35.0]},
        {"default": SEEDS, "lr_x2": SEEDS[:1]},
        "Sink_1 (%)",
        "a claim\npaper: 20 %",
        paper={"default": 25.0},
    ),
    "sink_dot_table": lambda: plots.sink_dot_table(
        {"default": [32.0, 1.6, 12.0], "wd_0": [0.0, 0.0, 0.0], "kv_bias_k (slot)": [39.0, 40.0]},
        (1.6, 32.0),
        "Which variant grew a sink? A long title that has to wrap onto a second line inside the canvas, "
        "as the report's does",
    ),
    "onset_curve": lambda: plots.onset_curve(
        [[(float(s), 512.0 * s, 10.0 * s) for s in range(1, 6)]], "default run", (3, 1536), [1, None, 3]
    ),
    "length_curves": lambda: plots.length_curves(
        {"0.3": [[(64.0, 50.0), (128.0, 40.0), (256.0, 30.0)]], "0.1": [[(64.0, 70.0), (128.0, 60.0)]]},
        "Sink_1 falls with T",
    ),
    "ablation_deltas": lambda: plots.ablation_deltas(
        [
            _ablation_row("mask-sink", "mask-sink", _delta(0.8, 0.7, 0.9)),
            _ablation_row("swap-first", "swap-first", _delta(-0.002, -0.004, -0.001)),
            _ablation_row("one sample", "swap-first", _delta(0.01, None, None)),
            _ablation_row("massive-zero", "massive-zero", None, status="skipped"),
        ],
        "tiny model: unablated loss 3.100, 3 samples of 12 tokens",
    ),
    "window_losses": lambda: plots.window_losses(
        _ablation_row("none", "none", None),
        [
            _ablation_row("window", "window", _delta(0.5, 0.4, 0.6)),
            _ablation_row("window+sinks S=1", "window+sinks", _delta(0.1, 0.0, 0.2)),
        ],
        4,
    ),
    "trajectory_sink": lambda: plots.trajectory_sink(
        [0, 1, 2, 4, 1000, 2000],
        {"0.3": [0.0, 0.0, 1.0, 3.0, 12.0, 20.0], "0.5": [0.0, 0.0, 0.0, 1.0, 4.0, 9.0]},
        "pythia-14m · T = 64, n = 100\nSink_1 during pre-training",
        (1000, 2097152000),
        "0.3",
    ),
    "trajectory_layers": lambda: plots.trajectory_layers(
        [0, 10, 100], np.array([[0.0, 10.0, 50.0], [0.0, 30.0, 90.0]]), "Sink_1 per layer"
    ),
    "trajectory_ratio": lambda: plots.trajectory_ratio([0, 10, 100], [1.2, None, 30.0], "massive activation"),
}


def test_every_figure_function_is_drawn_here() -> None:
    """A new figure function in sinklab.plots is tested by adding it to FIGURES (this test says so)."""
    drawn = {
        name
        for name, fn in inspect.getmembers(plots, inspect.isfunction)
        if fn.__module__ == plots.__name__
        and not name.startswith("_")
        and name != "figure"
        and inspect.signature(fn).return_annotation == "Figure"
    }
    assert drawn == set(FIGURES)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_is_written_as_png(name: str, tmp_path: Path) -> None:
    path = plots.save_png(FIGURES[name](), tmp_path / "sub" / f"{name}.png")
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 2000
    assert [p.name for p in path.parent.iterdir()] == [f"{name}.png"]  # no temporary file left behind


def test_png_bytes_and_data_uri(tmp_path: Path) -> None:
    data = plots.png_bytes(FIGURES["sink_by_position"]())
    assert data[:8] == PNG_SIGNATURE
    path = tmp_path / "f.png"
    path.write_bytes(data)
    uri = plots.png_data_uri(path)
    assert uri == plots.png_data_uri(data)
    assert base64.b64decode(uri.removeprefix("data:image/png;base64,")) == data


def test_no_pyplot_import(tmp_path: Path) -> None:
    """Drawing and saving a figure, through every module that draws, leaves pyplot unimported."""
    code = f"""
import sys
from pathlib import Path
import numpy as np
import sinklab.ablate.outputs, sinklab.experiments.demo, sinklab.experiments.report, sinklab.measure.outputs
from sinklab import plots
plots.save_png(plots.alpha_heatmap(np.full((2, 3), 0.5), annotate=True), Path({str(tmp_path)!r}) / "a.png")
plots.png_bytes(plots.attention_map(np.tril(np.ones((4, 4))) / 4, "map"))
assert "matplotlib" in sys.modules
print("pyplot" if "matplotlib.pyplot" in sys.modules else "no pyplot")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no pyplot"
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG_SIGNATURE


def test_claim_figure_legend_clears_long_run_names() -> None:
    """The bar panel's legend sits below the rotated run names, never on top of them."""
    names = ["default", "sigmoid_nonorm_lr_x0.25", "sigmoid_nonorm_wd_0_and_a_longer_name"]
    fig = plots.claim_figure({n: [1.0, 2.0] for n in names}, {}, "Sink_1 (%)", "title")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # constrained layout places everything in this draw
    renderer = canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    (legend,) = [lg for lg in legends if "ours (mean)" in [t.get_text() for t in lg.get_texts()]]
    legend_box = legend.get_window_extent(renderer)
    labels = fig.axes[0].get_xticklabels()
    assert [t.get_text() for t in labels] == names
    for label in labels:
        assert not legend_box.overlaps(label.get_window_extent(renderer)), label.get_text()


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_titles_and_legends_lie_inside_the_canvas(name: str) -> None:
    """Every title (axes and figure) and every legend of every figure function ends inside the canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = FIGURES[name]()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    width, height = canvas.get_width_height()
    texts = [t for ax in fig.axes for t in (ax.title, ax._left_title, ax._right_title) if t.get_text()]
    texts += [fig._suptitle] if fig._suptitle is not None else []
    boxes = [t.get_window_extent(renderer) for t in texts]
    boxes += [
        lg.get_window_extent(renderer) for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg
    ]
    for box in boxes:
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, (name, box)
