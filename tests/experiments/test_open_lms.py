"""open-lms: unreachable hub models are skipped, local folders are measured."""

from sinklab.experiments.open_lms import measure_open_lms


def test_unreachable_models_are_skipped_not_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = measure_open_lms(tmp_path, ("openai-community/gpt2-xl",), {"random": "random:0"}, samples=2)
    assert rows[0].skipped
    text = (tmp_path / "open_lms.md").read_text()
    assert "openai-community/gpt2-xl: skipped" in text


def test_local_model_is_measured_beside_the_paper(tmp_path):
    from sinklab.measure.make_tiny import make_tiny

    folder = make_tiny("llama", tmp_path / "tiny")
    rows = measure_open_lms(tmp_path, (str(folder),), {"random": "random:0", "repeat": "repeat"}, samples=4)
    assert rows[0].skipped is None
    assert all(0.0 <= v <= 100.0 for v in rows[0].values.values())
    assert str(folder) in (tmp_path / "open_lms.md").read_text()
