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
        _add_figure(trainer, pl_module, "val/confusion_matrix", matrix, self.max_classes)

    def on_test_end(self, trainer, pl_module) -> None:
        if not _tensorboards(trainer):
            return
        from imgcls.metrics import split_prefix

        for name, predictions in pl_module.test_predictions.items():
            k = len(predictions.class_names)
            matrix = np.bincount(predictions.labels * k + predictions.predicted, minlength=k * k).reshape(k, k)
            _add_figure(trainer, pl_module, f"{split_prefix(name)}confusion_matrix", matrix, self.max_classes)


def _tensorboards(trainer) -> list[TensorBoardLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]


def _add_figure(trainer, pl_module, tag: str, matrix: np.ndarray, max_classes: int | None) -> None:
    if not trainer.is_global_zero:
        return
    from imgcls.reports.confusion_matrix import plot_confusion_matrix
    from imgcls.reports.figures import plt

    step = pl_module.global_step
    figure = plot_confusion_matrix(
        matrix, pl_module.class_names, title=f"{tag} (step {step})", max_classes=max_classes
    )
    for logger in _tensorboards(trainer):
        logger.experiment.add_figure(tag, figure, global_step=step, close=False)
    plt.close(figure)
