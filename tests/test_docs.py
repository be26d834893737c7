"""The README is a front door (its two commands first, short, every docs page linked) and the generated
config reference in docs/train.md matches the dataclasses."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from sinklab.config import REFERENCE_END, REFERENCE_START, config_reference, rewrite_reference
from sinklab.train.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    block = README.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    assert commands[0].endswith("sinklab demo") and commands[1].endswith("pytest")
    assert all("pip install -c constraints.txt" in c for c in commands)


def test_readme_is_short_and_links_every_docs_page():
    assert len(README.splitlines()) <= 200
    linked = set(re.findall(r"\]\((docs/[^)#]+)", README))
    pages = {str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")}
    assert pages <= linked, pages - linked
    for link in linked:
        assert (ROOT / link).exists(), link


def test_config_reference_in_docs_is_current(tmp_path):
    page = (ROOT / "docs" / "train.md").read_text()
    generated = page.split(REFERENCE_START, 1)[1].split(REFERENCE_END, 1)[0].strip("\n")
    assert generated == config_reference(RunConfig).strip("\n"), "run: python -m sinklab.config"
    copy = tmp_path / "train.md"
    shutil.copy(ROOT / "docs" / "train.md", copy)
    assert not rewrite_reference(copy)


def test_config_reference_lists_every_key_with_its_meaning():
    text = config_reference(RunConfig)
    for key in ("train.lr", "data.bos", "model.attention.kernel", "model.kv_bias_key_dims"):
        assert f"`{key}`" in text
    assert not [line for line in text.splitlines() if line.startswith("| `") and line.endswith("|  |")]
