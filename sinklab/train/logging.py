"""Run outputs written while training: log.jsonl, TensorBoard events and the progress bar (rank 0 only)."""

from __future__ import annotations

import json
import math
import shutil
import sys
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
        keep_through: int = -1,
    ) -> None:
        """`keep_through`: the step the run starts from; what an earlier attempt logged after it (and a line
        a kill cut short) is dropped, so a resumed or restarted run ends with an uninterrupted run's log."""
        self.out = Path(out)
        self.enabled = enabled
        self._tb = None
        self._bar = None
        self._postfix: dict[str, str] = {}  # the progress line's loss and, from each evaluation, Sink_1
        if not enabled:
            return
        kept = self._truncate(keep_through)
        tb_dir = self.out / "tb"
        shutil.rmtree(tb_dir, ignore_errors=True)  # rebuilt below from the kept lines
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(tb_dir))
            for record in kept:
                self._scalars(record)
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

    def _truncate(self, step: int) -> list[dict[str, Any]]:
        """Keep the log lines up to `step` (none for -1); return them."""
        path = self.out / "log.jsonl"
        if not path.exists():
            return []
        kept: list[tuple[str, dict[str, Any]]] = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill; the run writes it again
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                kept.append((line, record))
        atomic_write_text(path, "".join(line + "\n" for line, _ in kept))
        return [record for _, record in kept]

    def progress(self, tokens: int, loss: float | None) -> None:
        if self._bar is not None:
            self._bar.update(tokens)
            if loss is not None:
                self._postfix["loss"] = f"{loss:.3f}"
                self._bar.set_postfix(self._postfix, refresh=False)

    def _show_evaluation(self, record: dict[str, Any]) -> None:
        """Each evaluation's Sink_1 (and the window-normalised one, the validation loss) on the progress
        line, and one line above it, so the sink's growth is seen while training."""
        if self._bar is None or not isinstance(record.get("sink_1"), int | float):
            return
        self._postfix["Sink_1"] = f"{record['sink_1']:.1f}%"
        window = record.get("sink_percent_window")
        if isinstance(window, list) and window:
            self._postfix["Sink_1(window)"] = f"{window[0]:.1f}%"
        if isinstance(record.get("val_loss"), int | float):
            self._postfix["val_loss"] = f"{record['val_loss']:.3f}"
        self._bar.set_postfix(self._postfix, refresh=True)
        self._bar.write(
            f"step {record.get('step')}: "
            + ", ".join(f"{k} {v}" for k, v in self._postfix.items() if k != "loss"),
            file=sys.stderr,  # beside the bar, not on stdout
        )

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._show_evaluation(record)
        # NaN and inf are not JSON: they are logged as null
        line = json.dumps(finite_or_none(record), allow_nan=False)
        with (self.out / "log.jsonl").open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        self._scalars(record)

    def _scalars(self, record: dict[str, Any]) -> None:
        if self._tb is None:
            return
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


def finite_or_none(value: Any) -> Any:
    """`value` with every non-finite float (in lists and dicts too) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value
