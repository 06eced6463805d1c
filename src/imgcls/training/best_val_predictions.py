"""The validation predictions of the best checkpoint, kept from the validation pass that
chose it, so that temperature scaling after training needs no second pass over the
validation set (0.4 s of a 5-epoch MNIST run here; minutes on a large set)."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

from imgcls.metrics import Predictions

# Logits kept per validation pass at most (samples x classes): 64 MB as float32, so that a
# large set with many classes (ImageNet: 50 million) is evaluated again instead.
MAX_KEPT_LOGITS = 2**24


class BestValidationPredictions(Callback):
    """Keeps each full validation pass's predictions until ``trainer.checkpoint_callback``
    has decided whether that pass made a new best checkpoint: :meth:`of` then gives them for
    ``best_model_path``.

    Only where the pass evaluated exactly what a prediction pass with that checkpoint would:
    the whole validation split (no ``limit_val_batches``), the weights the checkpoint holds
    (no weight averaging, which evaluates averaged weights). Nothing is kept across a resume:
    a best checkpoint from before it is evaluated again.
    """

    def __init__(self):
        self._pending: Predictions | None = None
        self._batches: list | None = None
        self._rows = 0
        self._kept: dict[str, Predictions] = {}
        self._best: tuple | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._best = _best_of(trainer)  # a resumed run's best so far, restored by now

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._settle(trainer)
        keeps = not trainer.sanity_checking and _evaluates_checkpointed_weights(trainer)
        self._batches, self._rows = ([] if keeps else None), 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self._batches is None:
            return
        _images, labels, positions = batch
        logits = outputs.float()
        self._batches.append((logits, labels, positions, pl_module.sample_losses(logits, labels)))
        self._rows += len(logits)
        if self._rows * logits.shape[1] > MAX_KEPT_LOGITS:
            self._batches = None

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._batches is not None and _whole_split(trainer):
            # Every process takes part: the rows are gathered from all of them.
            self._pending = pl_module.gathered_predictions("val", self._batches)
        self._batches = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # After the previous epoch's checkpoint: ModelCheckpoint saves at its on_validation_end
        # or, validating once an epoch, at its on_train_epoch_end, after every other callback's.
        self._settle(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._settle(trainer)

    def of(self, ckpt_path: str | None) -> Predictions | None:
        """The validation predictions of ``ckpt_path``'s weights, if a pass of this fit made them."""
        return self._kept.get(ckpt_path) if ckpt_path else None

    def _settle(self, trainer) -> None:
        """The last pass's predictions are the best checkpoint's if that changed with it."""
        best = _best_of(trainer)
        if self._pending is not None and best is not None and best != self._best:
            self._kept = {best[0]: self._pending}
        self._best, self._pending = best, None


def _best_of(trainer) -> tuple | None:
    checkpoint = trainer.checkpoint_callback
    if checkpoint is None or not checkpoint.best_model_path or checkpoint.best_model_score is None:
        return None
    return checkpoint.best_model_path, float(checkpoint.best_model_score)


def _whole_split(trainer) -> bool:
    limit = trainer.limit_val_batches  # an int counts batches; 1.0 is all of them
    return isinstance(limit, float) and limit == 1.0 and not trainer.overfit_batches


def _evaluates_checkpointed_weights(trainer) -> bool:
    from lightning.pytorch.callbacks import StochasticWeightAveraging, WeightAveraging

    return not any(isinstance(c, WeightAveraging | StochasticWeightAveraging) for c in trainer.callbacks)
