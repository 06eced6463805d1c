"""Keeps every epoch's validation metrics, so a run can report its best epoch in full."""

from __future__ import annotations

import math

from lightning.pytorch.callbacks import Callback


class MetricsHistory(Callback):
    """Records the logged ``val/*`` scalars after each validation epoch, under the epoch's
    number as the console shows it (1-based; Lightning's ``current_epoch`` counts from 0)."""

    def __init__(self, monitor: str, mode: str = "max"):
        if mode not in ("min", "max"):
            raise ValueError(f"monitor mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.epochs: list[dict[str, float]] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        # Not on_validation_epoch_end: callbacks run that hook before the module logs its metrics.
        # (Lightning runs checkpoint callbacks last, so saved checkpoints include this epoch.)
        if trainer.sanity_checking:
            return
        scalars = {
            key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith("val/")
        }
        self.epochs.append({"epoch": trainer.current_epoch + 1, **scalars})

    def best(self) -> dict[str, float] | None:
        """The epoch with the best monitored value (NaN never wins), or None before validation."""
        scored = [row for row in self.epochs if not math.isnan(row.get(self.monitor, math.nan))]
        if not scored:
            return None
        pick = max if self.mode == "max" else min
        return pick(scored, key=lambda row: row[self.monitor])

    def state_dict(self) -> dict:
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict) -> None:
        self.epochs = list(state_dict.get("epochs", []))
