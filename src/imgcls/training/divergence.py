"""A diverged run fails: a NaN or infinite training loss raises instead of training on."""

from __future__ import annotations

import math

from lightning.pytorch.callbacks import Callback


class FailOnNonFiniteLoss(Callback):
    """Raises ``FloatingPointError`` at the first non-finite training loss, so the run (or a
    sweep's trial) is recorded as failed rather than reporting its pre-divergence best."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(
                f"training loss is {float(loss)} at epoch {trainer.current_epoch}, step {trainer.global_step}: "
                "the run diverged (try a lower optimizer.lr)"
            )
