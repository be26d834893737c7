"""torchrun with 2 processes on gloo: DDP and FSDP2 agree with one process on the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sinklab.train.loop import read_log

pytestmark = pytest.mark.dist


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_match_one(mode, base_run, tiny_overrides, tmp_path):
    if shutil.which("torchrun") is None and not os.path.exists(
        os.path.join(os.path.dirname(sys.executable), "torchrun")
    ):
        pytest.skip("torchrun not found")
    out = tmp_path / mode
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "sinklab.cli",
        "train",
        "--out",
        str(out),
    ]
    for item in [*tiny_overrides, f"train.distributed={mode}"]:
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    single, multi = read_log(base_run), read_log(out)
    assert [r["step"] for r in multi] == [r["step"] for r in single]
    for a, b in zip(single, multi, strict=True):
        for key in ("train_loss", "val_loss", "mean_first_alpha"):
            if a[key] is not None:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (mode, a["step"], key)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (base_run, out))
    np.testing.assert_allclose(mb["alpha"], ma["alpha"], atol=1e-4)
    assert len(list((out / "checkpoints").iterdir())) == 4  # rank 0 alone wrote, no temporary leftovers
