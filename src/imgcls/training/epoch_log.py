"""One line per epoch in the console's log and ``train.log``: the epoch's logged numbers."""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback

from imgcls import console


class EpochLog(Callback):
    """``epoch 3/20  train/loss_epoch 0.4100  val/acc 0.9120 ...  12.3 s``.

    An epoch's training metrics are logged in ``on_train_epoch_end``, after the callbacks'
    own hook has run, so each epoch's line is written when the next epoch starts, training
    ends, or the run stops.
    """

    def __init__(self):
        self._pending: int | None = None
        self._started = time.perf_counter()

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
        numbers = {
            key: float(value)
            for key, value in sorted(trainer.callback_metrics.items())
            if key.startswith(("train/", "val/")) and not key.endswith("_step") and value.numel() == 1
        }
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        fields = "  ".join(f"{key} {value:.4f}" for key, value in numbers.items())
        console.info(f"epoch {self._pending + 1}{epochs}  {fields}  {time.perf_counter() - self._started:.1f} s")
        self._pending = None
