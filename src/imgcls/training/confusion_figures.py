"""The confusion matrix of every validation epoch and test set, as TensorBoard figures."""

from __future__ import annotations

import numpy as np
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torchmetrics.classification import MulticlassConfusionMatrix


class ConfusionMatrixFigures(Callback):
    """``val/confusion_matrix`` after each validation epoch (from the validation steps'
    logits, synced across processes) and ``test*/confusion_matrix`` from the test pass's
    predictions. Does nothing without a TensorBoard logger. Above ``max_classes`` classes a
    figure shows the most confused ones (reports/confusion_matrix.py)."""

    def __init__(self, max_classes: int | None = None):
        self._matrix: MulticlassConfusionMatrix | None = None
        self.max_classes = max_classes
        self._figure = None  # drawn again for every epoch and test set (reports/confusion_matrix.py)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if _tensorboards(trainer):
            self._matrix = MulticlassConfusionMatrix(pl_module.hparams.num_classes).to(pl_module.device)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self._matrix is not None and not trainer.sanity_checking:
            self._matrix.to(outputs.device).update(outputs, batch[1])

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._matrix is None or trainer.sanity_checking:
            return
        matrix = self._matrix.compute().cpu().numpy()
        self._matrix.reset()
        self._log(trainer, pl_module, "val/confusion_matrix", matrix)

    def on_test_end(self, trainer, pl_module) -> None:
        if not _tensorboards(trainer):
            return
        from imgcls.metrics import split_prefix

        for name, predictions in pl_module.test_predictions.items():
            k = len(predictions.class_names)
            matrix = np.bincount(predictions.labels * k + predictions.predicted, minlength=k * k).reshape(k, k)
            self._log(trainer, pl_module, f"{split_prefix(name)}confusion_matrix", matrix)

    def _log(self, trainer, pl_module, tag: str, matrix: np.ndarray) -> None:
        if not trainer.is_global_zero:
            return
        if self._figure is None:
            from imgcls.reports.confusion_matrix import ConfusionMatrixFigure

            self._figure = ConfusionMatrixFigure(pl_module.class_names, max_classes=self.max_classes)
        step = pl_module.global_step
        figure = self._figure.draw(matrix, title=f"{tag} (step {step})")
        for logger in _tensorboards(trainer):
            logger.experiment.add_figure(tag, figure, global_step=step, close=False)


def _tensorboards(trainer) -> list[TensorBoardLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
