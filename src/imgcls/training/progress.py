"""How a run shows its progress: a bar in a terminal, one line per epoch everywhere.

A bar redraws itself with carriage returns and escape codes, which a log file or a batch
job's output keeps as clutter; so ``trainer.enable_progress_bar: auto`` draws it only when
stdout is a terminal. The epoch line (training/epoch_log.py) is written either way.
"""

from __future__ import annotations

import sys

from lightning.pytorch.callbacks import TQDMProgressBar

from imgcls.config import ConfigError


def progress_bar_enabled(setting) -> bool:
    """``trainer.enable_progress_bar``: ``auto`` (a bar when stdout is a terminal), true or false."""
    if setting == "auto":
        return sys.stdout.isatty()
    if isinstance(setting, bool):
        return setting
    raise ConfigError(f"trainer.enable_progress_bar={setting!r} must be auto, true or false")


class MonitoredProgressBar(TQDMProgressBar):
    """Lightning's bar, also showing the latest value of the monitored metric (``monitor.metric``)."""

    def __init__(self, monitor: str, refresh_rate: int = 1, leave: bool = False):
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self.monitor = monitor

    def get_metrics(self, trainer, pl_module) -> dict:
        items = super().get_metrics(trainer, pl_module)
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and self.monitor not in items and value.numel() == 1:
            items[self.monitor] = f"{float(value):.3f}"
        return items
