"""`sinklab demo`: the machinery on the micro scale (CI) and the paper's claim at demo scale (slow)."""

import json
import os
import subprocess
import sys

import pytest

from sinklab.experiments.claims import RunResult
from sinklab.experiments.demo import report_texts, summarize
from sinklab.experiments.suites import MICRO


def _demo(out, *args, timeout=900):
    cmd = [sys.executable, "-m", "sinklab.cli", "demo", "--out", str(out), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def test_demo_machinery_on_micro_models(tmp_path, monkeypatch):
    monkeypatch.setenv("SINKLAB_CACHE", str(tmp_path / "cache"))
    sets = [a for item in MICRO for a in ("--set", item)]
    proc = _demo(tmp_path / "demo", *sets)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict:" in proc.stdout
    out = tmp_path / "demo"
    for name in ("softmax", "sigmoid"):
        config = json.loads((out / "runs" / name / "config.json").read_text())
        assert config["model"]["attention"]["kernel"] == name
        assert (out / "figures" / f"alpha1_{name}.png").exists()
        assert (out / "figures" / f"attention_map_{name}.png").exists()
    assert (
        json.loads((out / "runs" / "sigmoid" / "config.json").read_text())["model"]["attention"]["normalize"]
        is False
    )
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 7
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"softmax_sink", "sigmoid_sink", "softmax_loss", "sigmoid_loss", "shows_claim"}
    assert "| softmax |" in (out / "report.md").read_text()
    # The mask-sink line: both models ablated through the ablate API, shown in both reports and printed.
    assert set(summary["mask_sink"]) == {"softmax", "sigmoid"}
    for effect in summary["mask_sink"].values():
        assert effect["n"] >= 1 and effect["sink_1_after"] == 0.0
    assert "masking the sink" in proc.stdout
    assert "masking the sink" in (out / "report.md").read_text() and "masking the sink" in page


def test_verdict_logic():
    def run(name, sink, loss):
        return RunResult(name, [sink] + [0.0] * 63, loss)

    assert summarize(run("softmax", 12.0, 3.0), run("sigmoid", 0.5, 3.2), None).shows_claim
    assert not summarize(run("softmax", 8.0, 3.0), run("sigmoid", 0.5, 3.2), None).shows_claim
    assert not summarize(run("softmax", 12.0, 3.0), run("sigmoid", 2.0, 3.2), None).shows_claim
    assert not summarize(run("softmax", 12.0, 3.0), run("sigmoid", 0.5, 3.5), None).shows_claim
    # the report says on how many seeds the recipe's contrast was checked
    assert (
        "checked on 3 seeds for softmax"
        in summarize(run("softmax", 12.0, 3.0), run("sigmoid", 0.5, 3.2), None).verdict_text
    )


def test_report_texts_hold_the_table_the_ablation_line_and_every_figure(tmp_path):
    """report.md and report.html through the demo templates, on hand-made results: the same lines as the
    hand-built report had, figures linked (Markdown) or embedded (HTML), HTML escaped."""
    runs = {
        "softmax": RunResult("softmax", [34.75] + [0.0] * 63, 3.695, sink_by_layer=[[0.0], [69.5]]),
        "sigmoid": RunResult("sigmoid", [0.0] * 64, 3.693, sink_by_layer=[[0.0], [0.0]]),
    }
    summary = summarize(runs["softmax"], runs["sigmoid"], 0.0)
    summary.mask_sink_text = "masking the sink changes <the loss> & more"
    images = []
    for name, caption in (("sink1_by_eps", "Sink_1 during training at ε = 0.1 / 0.2 / 0.3"), ("x", "a < b")):
        path = tmp_path / "figures" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\x89PNG" + name.encode())
        images.append((caption, path))
    markdown, page = report_texts(summary, runs, images, tmp_path)
    assert markdown.startswith("# sinklab demo: softmax vs sigmoid attention\n\n```\nsoftmax: Sink_1 = 34.8%")
    assert "| model | Sink_1 (ε 0.3) | Sink_1 per layer | validation loss |\n|---|---|---|---|\n" in markdown
    assert "| softmax | 34.75 | 0.0 / 69.5 | 3.695 |\n| sigmoid | 0.00 | 0.0 / 0.0 | 3.693 |\n" in markdown
    assert "\n\nSigmoid on raw (unnormalised) weights: Sink_1 = 0.00%.\n" in markdown
    assert "\n\nAblation (sinklab ablate on each run's evaluation sequences" in markdown
    assert "masking the sink changes <the loss> & more.\n" in markdown
    assert markdown.endswith(
        "\n\n![Sink_1 during training at ε = 0.1 / 0.2 / 0.3](figures/sink1_by_eps.png)\n"
        "![a < b](figures/x.png)\n"
    )
    assert page.count("data:image/png;base64,") == 2
    assert "<td>softmax</td><td>34.75</td><td>0.0 / 69.5</td><td>3.695</td>" in page
    assert "masking the sink changes &lt;the loss&gt; &amp; more." in page
    assert "<figcaption>a &lt; b</figcaption>" in page and "border-left:4px solid #1a7f37" in page


@pytest.mark.slow
def test_demo_shows_softmax_sink_and_no_sigmoid_sink(tmp_path):
    """The README's main job, as shipped: softmax sinks, sigmoid does not, similar loss (about 10 min)."""
    proc = _demo(tmp_path / "demo", timeout=1500)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    print(proc.stdout)
    assert summary["softmax_sink"] >= 10.0
    assert summary["sigmoid_sink"] <= 1.0
    assert abs(summary["softmax_loss"] - summary["sigmoid_loss"]) <= 0.3


@pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals")
def test_demo_stopped_early_finishes_with_the_same_command(tmp_path, monkeypatch):
    """SIGTERM (or Ctrl-C) in the first seconds of the demo, before any checkpoint: the README's command run
    again finishes the work instead of refusing the folder."""
    import signal
    import time

    monkeypatch.setenv("SINKLAB_CACHE", str(tmp_path / "cache"))
    sets = [
        a
        for item in (*MICRO, "train.steps=300", "train.eval_every=100", "train.checkpoint_every=100")
        for a in ("--set", item)
    ]
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "sinklab.cli", "demo", "--out", str(out), *sets]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not all(
        (out / "runs" / n / "log.jsonl").exists() for n in ("softmax", "sigmoid")
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err
    assert not (out / "runs" / "softmax" / "metrics.json").exists()  # really stopped before the end
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (out / "report.html").exists()
