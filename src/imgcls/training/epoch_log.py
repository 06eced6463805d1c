"""One line per epoch in the console's log and ``train.log``: the epoch's losses, the
monitored metric, how long the epoch took and how long the rest will take."""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback

from imgcls import console

# Shown on every line, when logged, in this order; the monitored metric joins them.
HEADLINE = {"train/loss_epoch": "train/loss", "val/loss": "val/loss", "val/acc": "val/acc"}


class EpochLog(Callback):
    """``epoch 3/20  train/loss 0.4100  val/loss 0.3800  val/acc 0.9120  12.3 s  eta 3 min``.

    The full set of numbers is in the loggers (TensorBoard, csv/); this line is the one to
    read at a glance, in a terminal or a log file alike. An epoch's training metrics are
    logged in ``on_train_epoch_end``, after the callbacks' own hook has run, so each epoch's
    line is written when the next epoch starts, training ends, or the run stops.
    """

    def __init__(self, monitor: str = "val/acc"):
        self.monitor = monitor
        self._pending: int | None = None
        self._started = time.perf_counter()
        self._epoch_times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._flush(trainer)
        self._pending, self._started = trainer.current_epoch, time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self._flush(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._flush(trainer)

    def _flush(self, trainer) -> None:
        if self._pending is None:
            return
        seconds = time.perf_counter() - self._started
        self._epoch_times.append(seconds)
        names = {**HEADLINE, self.monitor: self.monitor}
        fields = [
            f"{shown} {float(value):.4f}"
            for key, shown in names.items()
            if (value := trainer.callback_metrics.get(key)) is not None and value.numel() == 1
        ]
        epoch, total = self._pending + 1, trainer.max_epochs
        epochs = f"epoch {epoch}/{total}" if total and total > 0 else f"epoch {epoch}"
        parts = [epochs, *fields, f"{seconds:.1f} s"]
        if total and total > epoch and not trainer.should_stop:
            mean = sum(self._epoch_times) / len(self._epoch_times)
            parts.append(f"eta {duration((total - epoch) * mean)}")
        console.info("  ".join(parts))
        self._pending = None


def duration(seconds: float) -> str:
    """``45 s``, ``3 min``, ``2 h 05 min``: how long the remaining epochs take, roughly."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
