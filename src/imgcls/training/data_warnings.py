"""Warnings about data too small or too skewed to train or judge a model on: in the console,
``train.log``, ``metrics.json`` (``warnings``) and the report. None of them stops the run."""

from __future__ import annotations

import math

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from imgcls import console
from imgcls.display import display_names

# Fewer optimizer steps per epoch than this leave BatchNorm's running statistics (momentum
# 0.1) mostly those of the first batches: evaluation then normalizes with the wrong numbers.
MIN_STEPS_WITH_BATCHNORM = 10
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class DataWarnings(Callback):
    """Warns when (1) an epoch has fewer than ``min_steps`` optimizer steps and the model has
    BatchNorm, (2) a validation or test split lacks a class, (3) the last validation epoch
    predicted one class for every image. ``warnings`` holds the messages."""

    def __init__(self, min_steps: int = MIN_STEPS_WITH_BATCHNORM):
        self.min_steps = int(min_steps)
        self.warnings: list[str] = []
        self._predicted: set[int] = set()
        self._validated = 0
        self._last_epoch_predicted: set[int] | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        data = trainer.datamodule
        splits = data.splits
        names = display_names(data.class_names)
        steps = math.ceil(math.ceil(len(splits.train) / data.batch_size) / trainer.accumulate_grad_batches)
        if steps < self.min_steps and any(isinstance(m, _BATCHNORMS) for m in pl_module.modules()):
            self._warn(
                f"{steps} optimizer steps per epoch ({len(splits.train)} training images, batch size "
                f"{data.batch_size}) with BatchNorm in the model: its running statistics stay those of "
                f"a few batches and validation is unreliable; use more data, a smaller data.batch_size "
                f"(at least {self.min_steps} steps) or a model without BatchNorm"
            )
        for split, part in {"val": splits.val, **data.test_sets}.items():
            if not len(part):
                continue
            present = set(torch.unique(part.labels).tolist())
            missing = [name for index, name in enumerate(names) if index not in present]
            if missing:
                shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
                self._warn(
                    f"the {split} split has no images of {len(missing)} of {len(names)} classes ({shown}): "
                    "its metrics say nothing about them"
                )

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._predicted, self._validated = set(), 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking and outputs is not None:
            self._predicted.update(outputs.argmax(dim=1).unique().tolist())
            self._validated += len(outputs)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and self._validated:
            self._last_epoch_predicted = set(self._predicted)

    def on_fit_end(self, trainer, pl_module) -> None:
        predicted = self._last_epoch_predicted
        if predicted is not None and len(predicted) == 1 and pl_module.hparams.num_classes > 1:
            (only,) = predicted
            name = display_names(trainer.datamodule.class_names)[only]
            self._warn(
                f"the model predicts one class ({name}) for every validation image: it has not "
                "learned to tell the classes apart (too little data, too few epochs, a learning "
                "rate too high or too low, or a strong class imbalance)"
            )

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        console.warn(f"Data warning: {message}")
