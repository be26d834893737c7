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
