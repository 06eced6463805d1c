"""Per-sample predictions of any split (train, val or a test set), by ``trainer.predict``.

What temperature scaling and the suspect-label search need outside the test pass, whose
numbers are the run's test metrics; nothing here is logged.
"""

from __future__ import annotations

from imgcls.metrics import Predictions


def predict_split(
    trainer, model, datamodule, split: str, ckpt_path: str | None = None, weights_only: bool = True
) -> Predictions | None:
    """``model``'s predictions of ``datamodule``'s ``split`` (with ``ckpt_path``'s weights when
    given), able to show and name their images; None for an empty split."""
    if not len(datamodule.split(split)):
        return None
    previous, datamodule.predict_split = datamodule.predict_split, split
    try:
        trainer.predict(
            model, datamodule=datamodule, ckpt_path=ckpt_path, return_predictions=False, weights_only=weights_only
        )
    finally:
        datamodule.predict_split = previous
    predictions = model.predicted
    data = datamodule.split(split)
    predictions.split, predictions.image_source, predictions.evaluated_of = split, data.images, len(data)
    predictions.sample_paths = datamodule.sample_paths(split)
    return predictions
