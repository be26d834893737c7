"""Run outputs written while training: log.jsonl, TensorBoard events and the progress bar (rank 0 only)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sinklab.io import atomic_write_text

# Scalars mirrored to TensorBoard (the lists stay in log.jsonl).
_SCALARS = ("lr", "train_loss", "val_loss", "sink_1", "mean_first_alpha", "slot_sink_percent", "tokens_per_s")


class RunLogger:
    """Writes on the main process only, so the loop can call it on every rank."""

    def __init__(
        self,
        out: Path,
        *,
        enabled: bool,
        tensorboard: bool,
        progress: bool,
        total_tokens: int,
        done_tokens: int = 0,
    ) -> None:
        self.out = Path(out)
        self.enabled = enabled
        self._tb = None
        self._bar = None
        if not enabled:
            return
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out / "tb"))
        if progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total_tokens,
                initial=done_tokens,  # a resumed run starts where it stands; the ETA counts what is left
                unit="tok",
                unit_scale=True,
                dynamic_ncols=True,
                desc="train",
            )

    def truncate_after(self, step: int) -> None:
        """On resume: drop log lines past the checkpoint, which the resumed run will write again."""
        path = self.out / "log.jsonl"
        if not self.enabled or not path.exists():
            return
        keep = [
            line
            for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step
        ]
        atomic_write_text(path, "".join(line + "\n" for line in keep))

    def progress(self, tokens: int, loss: float | None) -> None:
        if self._bar is not None:
            self._bar.update(tokens)
            if loss is not None:
                self._bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with (self.out / "log.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key in _SCALARS:
                value = record.get(key)
                if isinstance(value, int | float) and math.isfinite(value):
                    self._tb.add_scalar(key, value, record["step"])
            self._tb.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
