"""A callback that sends its own process SIGTERM, as a cluster's scheduler would, at a
chosen training batch: an interruption mid-epoch whatever the machine's speed."""

import os
import signal

from lightning.pytorch.callbacks import Callback


class SigtermAtBatch(Callback):
    def __init__(self, epoch: int, batch: int, signal_name: str = "SIGTERM"):
        self.epoch, self.batch = epoch, batch
        self.signal = signal.Signals[signal_name]  # SIGINT: as Ctrl-C sends

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # A resumed run continues the epoch after this batch, so the signal comes once.
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), self.signal)
