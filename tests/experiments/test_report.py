"""The report on hand-made run directories: table, verdicts, figures, self-contained HTML."""

import json

from sinklab.experiments.report import write_report


def fake_run(out, name, sink1, loss=3.0, slot=None):
    run = out / "runs" / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": {"n_layer": 2, "n_head": 4}}))
    sink = [sink1, 1.0] + [0.0] * 14
    metrics = {"epsilon": 0.3, "sink_percent": sink, "val_loss": loss, "sink_percent_by_layer": [sink, sink]}
    if slot is not None and name == "kv_bias_k":
        metrics["slot"] = {"sink_percent_by_eps": {"0.3": slot}}  # as `sinklab measure` writes it
    elif slot is not None:
        metrics["slot_sink_percent"] = slot  # as `sinklab train` writes it
    (run / "metrics.json").write_text(json.dumps(metrics))
    log = [
        {
            "step": s,
            "tokens": s * 100,
            "val_loss": loss + 1 / (s + 1),
            "sink_percent": [sink1 if s >= 6 else sink1 * s / 10],
        }
        for s in (0, 2, 4, 6, 8, 10)
    ]
    (run / "log.jsonl").write_text("\n".join(json.dumps(x) for x in log) + "\n")


def test_report_table_and_files(tmp_path):
    (tmp_path / "sweep.json").write_text(
        json.dumps({"suites": ["optimization", "architecture"], "scale": "tiny"})
    )
    for seed, jitter in enumerate((0.0, 1.0, -1.0)):
        suffix = "" if seed == 0 else f"-seed{seed}"
        fake_run(tmp_path, "default" + suffix, 20.0 + jitter)
        fake_run(tmp_path, "lr_x0.25" + suffix, 4.0 + jitter)
        fake_run(tmp_path, "lr_x2" + suffix, 35.0 + jitter)
    fake_run(tmp_path, "kv_bias_k", 0.0, slot=60.0)
    fake_run(tmp_path, "sink_token", 0.0, slot=50.0)
    (tmp_path / "runs" / "unfinished").mkdir()
    md, html, findings = write_report(tmp_path)
    verdicts = {c.id: f.verdict for c, f in findings}
    assert verdicts["sink-emerges"] == "reproduced"
    assert verdicts["lr-smaller-weaker"] == "reproduced"  # 20 vs 4: beyond one head (12.5)
    assert verdicts["lr-larger-stronger"] == "reproduced"  # 35 vs 20: 15 > 12.5
    # One seed has no interval: never decided, whatever its value.
    assert verdicts["k-bias"] == "inconclusive"
    assert verdicts["sink-token"] == "inconclusive"  # an architecture claim: judged at a BOS scale too
    assert verdicts["eps-length"] == "missing"  # nothing measured over lengths
    assert verdicts["batch-no-effect"] == "missing"
    text = md.read_text()
    assert "| A smaller learning rate gives a weaker sink | lr 8e-4: 32.23" in text
    # mean [min–max] over seeds and n, for every number
    assert "default Sink_1 20.00 [19.00–21.00] (n=3)" in text
    assert "| default | 3 | 20.00 [19.00–21.00] |" in text
    assert "| kv_bias_k | 1 | 0.00 | 1.00 | 60.00 | 3.115 |" in text  # loss: mean of the last 3 evaluations
    assert "## Not covered" in text and "Rule" in text
    assert "11 finished runs (5 run names, 3 seed(s) each; 1 seed(s): kv_bias_k, sink_token)." in text
    page = html.read_text()
    assert "data:image/png;base64," in page and "<table>" in page
    published = json.loads((tmp_path / "claims.json").read_text())
    claims = published["claims"]
    assert published["rule"]["level"] == 0.95 and published["onset"]["per_seed"][0] is not None
    assert {c["id"] for c in claims} == set(verdicts)
    lr = next(c for c in claims if c["id"] == "lr-smaller-weaker")
    assert lr["runs"]["default"]["seeds"] == [0, 1, 2]
    assert lr["runs"]["default"]["sink_1"] == [20.0, 21.0, 19.0]
    assert "smallest effect worth calling" in lr["rule"] and "Welch t" in lr["rule"]
    assert lr["requires"][0]["a"] == [20.0, 21.0, 19.0] and lr["requires"][0]["holds"]
    assert lr["metric"]["key"] == "sink_1"
    assert (tmp_path / "figures" / "sink1_overview.png").stat().st_size > 1000
    assert not (tmp_path / "figures" / "claim_eps-length.png").exists()  # no evidence figure when missing
    assert not (tmp_path / "figures" / "claim_batch-no-effect.png").exists()
    assert (tmp_path / "figures" / "default_onset.png").stat().st_size > 1000  # steps and tokens, onset


def test_report_on_a_directory_that_is_not_a_sweep(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match=r"sweep\.json"):
        write_report(tmp_path)


def test_a_corrupt_run_is_listed_not_fatal(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"suites": ["optimization"], "scale": "tiny"}))
    fake_run(tmp_path, "default", 20.0)
    fake_run(tmp_path, "lr_x2", 30.0)
    (tmp_path / "runs" / "lr_x2" / "log.jsonl").write_text('{"step": 0}\n{"step": 1, trunc')
    (tmp_path / "runs" / "default-seed1").mkdir()
    (tmp_path / "runs" / "default-seed1" / "metrics.json").write_text("not json")
    md, _, findings = write_report(tmp_path)
    text = md.read_text()
    assert "Unreadable runs" in text and "lr_x2" in text and "line 2" in text
    assert {c.id: f.verdict for c, f in findings}["lr-larger-stronger"] == "missing"


def test_a_corrupt_sweep_json_is_a_clear_error(tmp_path):
    import pytest

    from sinklab.cli import main

    (tmp_path / "sweep.json").write_text("{broken")
    assert main(["report", str(tmp_path)]) == 2
    with pytest.raises(Exception, match="corrupt"):
        write_report(tmp_path)


def test_a_run_short_of_its_seeds_is_left_out_of_every_verdict(tmp_path):
    runs = [f"default{s}" for s in ("", "-seed1", "-seed2")] + [
        f"lr_x0.25{s}" for s in ("", "-seed1", "-seed2")
    ]
    (tmp_path / "sweep.json").write_text(
        json.dumps({"suites": ["optimization"], "scale": "tiny", "runs": runs})
    )
    for seed, jitter in enumerate((0.0, 1.0, -1.0)):
        fake_run(tmp_path, "default" + ("" if seed == 0 else f"-seed{seed}"), 20.0 + jitter)
    fake_run(tmp_path, "lr_x0.25", 0.0)
    fake_run(tmp_path, "lr_x0.25-seed1", 0.0)  # seed 2 still training
    md, _, findings = write_report(tmp_path)
    verdicts = {c.id: f.verdict for c, f in findings}
    assert verdicts["lr-smaller-weaker"] == "missing"
    assert verdicts["sink-emerges"] == "reproduced"
    assert "lr_x0.25: 2 of 3 seeds finished" in md.read_text()
