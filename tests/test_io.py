"""Atomic writes: whole files or none, with the permissions any file the user creates gets."""

from __future__ import annotations

import os

import pytest

from sinklab.io import atomic_write, atomic_write_json, atomic_write_text


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    path = atomic_write_json(tmp_path / "metrics.json", {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert path.read_text() == '{\n  "a": 1\n}\n'


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "report.md", "old")

    def broken(p):
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]
