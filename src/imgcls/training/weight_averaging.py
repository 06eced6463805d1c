"""EMA of the weights, through Lightning's own ``EMAWeightAveraging``; this module owns what
the run says about which weights it evaluated.

Lightning's callback validates with the averaged weights (swapping them in for each
validation epoch), saves them as every checkpoint's ``state_dict`` (the raw weights go to
``current_model_state``) and copies them into the model when fit ends. What it does not do
by itself: when the same trainer then tests a checkpoint, its ``on_load_checkpoint``, meant
for resuming, loads the raw weights back over the averaged ones. :class:`EMA` keeps that for
fit (resume) only, so that the test pass, the report and predict/evaluate all see the same
averaged weights as validation and the best checkpoint.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import EMAWeightAveraging, WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn

from imgcls.config import ConfigError

RAW = "raw"


class EMA(EMAWeightAveraging):
    """``EMAWeightAveraging`` whose checkpoint restore (raw and averaged weights) applies when
    fitting; a test or validation of a checkpoint evaluates its ``state_dict``: the average."""

    def __init__(self, decay: float = 0.999, **kwargs):
        try:
            valid = 0.0 < float(decay) < 1.0
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ConfigError(f"callbacks.ema.decay={decay!r} must be a number in (0, 1), e.g. 0.999")
        super().__init__(decay=float(decay), **kwargs)
        self.decay = float(decay)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def evaluated_weights(callbacks) -> str:
    """Which weights validation, the best checkpoint and the test pass used: ``raw`` or the average."""
    for callback in callbacks:
        if isinstance(callback, EMA):
            return f"ema (decay {callback.decay:g})"
        if isinstance(callback, WeightAveraging):
            return f"averaged ({type(callback).__name__})"
    return RAW
