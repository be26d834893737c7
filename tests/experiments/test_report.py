"""The report on hand-made run directories: table, verdicts, figures, self-contained HTML."""

import json

from sinklab.experiments.report import write_report


def fake_run(out, name, sink1, loss=3.0, slot=None):
    run = out / "runs" / name
    run.mkdir(parents=True)
    sink = [sink1, 1.0] + [0.0] * 14
    metrics = {"epsilon": 0.3, "sink_percent": sink, "val_loss": loss, "sink_percent_by_layer": [sink, sink]}
    if slot is not None and name == "kv_bias_k":
        metrics["slot"] = {"sink_percent_by_eps": {"0.3": slot}}  # as `sinklab measure` writes it
    elif slot is not None:
        metrics["slot_sink_percent"] = slot  # as `sinklab train` writes it
    (run / "metrics.json").write_text(json.dumps(metrics))
    log = [
        {"step": s, "tokens": s * 100, "val_loss": loss + 1 / (s + 1), "sink_percent": [sink1 * s / 10]}
        for s in (0, 5, 10)
    ]
    (run / "log.jsonl").write_text("\n".join(json.dumps(x) for x in log) + "\n")


def test_report_table_and_files(tmp_path):
    (tmp_path / "sweep.json").write_text(
        json.dumps({"suites": ["optimization", "architecture"], "scale": "tiny"})
    )
    fake_run(tmp_path, "default", 20.0)
    fake_run(tmp_path, "lr_x0.25", 4.0)
    fake_run(tmp_path, "lr_x2", 35.0)
    fake_run(tmp_path, "kv_bias_k", 0.0, slot=60.0)
    fake_run(tmp_path, "sink_token", 0.0, slot=50.0)
    (tmp_path / "runs" / "unfinished").mkdir()
    md, html, findings = write_report(tmp_path)
    verdicts = {c.id: f.verdict for c, f in findings}
    assert verdicts["sink-emerges"] == "reproduced"
    assert verdicts["lr-smaller-weaker"] == "reproduced"
    assert verdicts["lr-larger-stronger"] == "reproduced"
    assert verdicts["k-bias"] == "reproduced"
    assert verdicts["sink-token"] == "reproduced"
    assert verdicts["batch-no-effect"] == "missing"
    text = md.read_text()
    assert "| A smaller learning rate gives a weaker sink | lr 8e-4: 32.23" in text
    assert "| kv_bias_k | 0.00 | 1.00 | 60.00 | 3.000 |" in text
    page = html.read_text()
    assert "data:image/png;base64," in page and "<table>" in page
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert {c["id"] for c in claims} == set(verdicts)
    assert (tmp_path / "figures" / "sink1_curves.png").stat().st_size > 1000


def test_report_on_a_directory_that_is_not_a_sweep(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match=r"sweep\.json"):
        write_report(tmp_path)
