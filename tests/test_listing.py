"""`sinklab list` names the variants that are config flags, and each flag is a real, valid setting."""

import pytest

from sinklab.config import apply_overrides
from sinklab.listing import FLAG_VARIANTS, listing_text
from sinklab.train.presets import get_run_preset

EXAMPLES = {"N": "2", "M": "5", "D": "1"}


@pytest.mark.parametrize("flag", [f for f, _ in FLAG_VARIANTS])
def test_every_flag_variant_is_a_valid_setting(flag):
    key, value = flag.split("=")
    overrides = [f"{key}={EXAMPLES.get(value, value)}"]
    if "kv_bias_" in key:
        overrides.insert(0, "model.kv_bias=k")
    if "normalize" in key:
        overrides.insert(0, "model.attention.kernel=sigmoid")
    apply_overrides(get_run_preset("tiny"), overrides)


def test_listing_names_gated_attention_and_post_ln():
    text = listing_text()
    assert "gated attention" in text and "post-LN" in text


def test_listing_cites_nothing_outside_the_repository():
    from sinklab.listing import listing_text

    assert "paper.md" not in listing_text()  # the paper's notes are not part of the repository


def test_a_misspelt_flag_or_command_is_answered_with_the_closest(capsys):
    import pytest

    from sinklab.cli import main

    with pytest.raises(SystemExit):
        main(["measure", "--model", "m", "--lenght", "8", "--out", "o"])
    err = capsys.readouterr().err
    assert "usage: sinklab measure" in err and "--lenght: did you mean --length?" in err
    with pytest.raises(SystemExit):
        main(["mesure", "--model", "m"])
    assert "did you mean measure?" in capsys.readouterr().err
