"""A diverged run fails: a NaN or infinite training loss raises instead of training on."""

from __future__ import annotations

import math

from lightning.pytorch.callbacks import Callback


class FailOnNonFiniteLoss(Callback):
    """Raises ``FloatingPointError`` once the training loss is NaN or infinite, so the run (or
    a sweep's trial) is recorded as failed rather than reporting its pre-divergence best.

    Reading the loss waits for the device, so it is checked every ``check_every_n_steps``
    steps and at the end of each epoch: a diverged loss stays non-finite, and is caught
    within that many steps.
    """

    def __init__(self, check_every_n_steps: int = 10):
        self.check_every_n_steps = max(1, int(check_every_n_steps))
        self._last_loss = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        self._last_loss = loss.detach()
        if (batch_idx + 1) % self.check_every_n_steps == 0:
            self._check(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._last_loss is not None:
            self._check(trainer)

    def _check(self, trainer) -> None:
        value = float(self._last_loss)
        if not math.isfinite(value):
            raise FloatingPointError(
                f"training loss is {value} at epoch {trainer.current_epoch + 1}, step {trainer.global_step}: "
                "the run diverged (try a lower optimizer.lr)"
            )
