"""Grouped optimizer steps: several optimizer steps per Lightning step (Keras calls it
``steps_per_execution``). This module owns them: when they apply, the steps themselves,
and what Lightning is told about them.

Lightning's bookkeeping around each training step (hooks, progress, logging checks) costs
about 0.6 ms here, plus the DataLoader's per-batch work: 15-20% of a small model's step on
CPU. With ``fused_steps=k`` the train loader hands over k batches at once, augmented in one
go, and the model steps through them under Lightning's manual optimization, through its
public API: ``self.optimizers()`` (Lightning's optimizer wrapper, which counts
``global_step`` and runs the precision plugin: the 16-bit gradient scaler), ``manual_backward``
(``on_before_backward``/``on_after_backward``), ``on_before_optimizer_step`` (where the
gradients are clipped, after unscaling) and the profiler's spans all run for every step.
Lightning calls each hook on every callback (about 2 us each; a run has a dozen), so where
``manual_backward`` would only dispatch backward hooks that nothing overrides, the step calls
the loss's own ``backward`` instead (:func:`backward_for`): 5% of a 1 ms logistic-regression step.

What runs once per group are the per-batch hooks (``on_train_batch_start/end``). So
``auto`` gives 1 whenever a setting counts batches or acts on every batch (see
:func:`step_dependent_settings`), and an explicit count above 1 is then refused with the
setting named: no setting ever changes meaning. The progress bar counts groups.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from imgcls.config import ConfigError

# auto: up to this many steps, while a group's images (uint8, as loaded) stay within
# AUTO_GROUP_BYTES. Small images have short steps, where the bookkeeping counts; large
# images have long steps, and a group of them would only hold memory (4x as floats).
AUTO_MAX_FUSED_STEPS = 64
AUTO_GROUP_BYTES = 32 * 2**20
# Trainer options whose integer values count batches (a float is a fraction of the epoch).
_BATCH_COUNTS = ("limit_train_batches", "val_check_interval", "overfit_batches")


def resolve_fused_steps(setting, trainer, batch_bytes: int = 0, callback_configs=None, tuning=()) -> int:
    """``fused_steps`` (``auto`` or a count) for this trainer and a batch of ``batch_bytes``.

    ``callback_configs`` maps each configured callback object to its config (what a
    callback's own attributes do not say, e.g. ``ModelCheckpoint.every_n_train_steps``).
    ``tuning``: the Tuner's finders the run calls (``lr_find=true``), which count batches.
    """
    settings = step_dependent_settings(trainer, callback_configs or {})
    settings += [f"{finder} (the Tuner counts batches)" for finder in tuning]
    if setting == "auto":
        if settings:
            return 1
        return max(1, min(AUTO_MAX_FUSED_STEPS, AUTO_GROUP_BYTES // max(1, batch_bytes)))
    try:
        steps = int(setting)
    except (TypeError, ValueError):
        steps = 0
    if steps < 1:
        raise ConfigError(f"fused_steps must be 'auto' or a count >= 1, got {setting!r}")
    if steps > 1 and settings:
        raise ConfigError(
            f"fused_steps={steps} groups {steps} batches into one Lightning step, which changes what "
            f"{' and '.join(settings)} mean(s): set fused_steps=1 (or auto, which gives 1 here)"
        )
    return steps


def step_dependent_settings(trainer, callback_configs=None) -> list[str]:
    """The settings of this trainer that count batches, act on every batch or need
    Lightning's own optimization loop; grouped steps would change what they mean."""
    from lightning.pytorch.callbacks import (
        BatchSizeFinder,
        Callback,
        LearningRateFinder,
        LearningRateMonitor,
        ModelCheckpoint,
        ProgressBar,
        StochasticWeightAveraging,
        Timer,
        WeightAveraging,
    )

    from imgcls.training.divergence import FailOnNonFiniteLoss

    callback_configs = callback_configs or {}
    found = []
    if trainer.world_size > 1:  # DDP syncs gradients once per forward of the wrapped model
        found.append(f"a {trainer.world_size}-process run (trainer.devices, trainer.num_nodes)")
    if trainer.accumulate_grad_batches > 1:
        found.append("trainer.accumulate_grad_batches")
    if trainer.fast_dev_run:
        found.append("trainer.fast_dev_run")
    for name in _BATCH_COUNTS:
        value = getattr(trainer, name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            found.append(f"trainer.{name}={value} (a number of batches)")
    for callback in trainer.callbacks:
        kind = type(callback).__name__
        config = callback_configs.get(id(callback)) or {}
        if isinstance(callback, WeightAveraging | StochasticWeightAveraging):
            found.append(f"callback {kind} (it averages the weights after every batch)")
        elif isinstance(callback, LearningRateFinder | BatchSizeFinder):
            found.append(f"callback {kind} (the Tuner counts batches)")
        elif isinstance(callback, LearningRateMonitor):
            if callback.logging_interval != "epoch":
                found.append(f"callback {kind} with logging_interval={callback.logging_interval}")
        elif isinstance(callback, ModelCheckpoint):
            if config.get("every_n_train_steps"):
                found.append(f"callback {kind} with every_n_train_steps={config['every_n_train_steps']}")
        elif isinstance(callback, ProgressBar | Timer | FailOnNonFiniteLoss):
            pass  # per group is enough for them
        elif any(
            getattr(type(callback), hook) is not getattr(Callback, hook)
            for hook in ("on_train_batch_start", "on_train_batch_end")
        ):
            found.append(f"callback {kind} (it acts on every training batch)")
    return found


def configure(trainer, model, datamodule, steps: int) -> None:
    """Hand ``steps`` to the loader and the model. Grouped, Lightning's automatic clipping is
    not available (manual optimization); the model clips each step itself, with the same
    ``trainer.gradient_clip_val`` and algorithm."""
    datamodule.fused_steps = steps
    clip = None
    if steps > 1 and trainer.gradient_clip_val:
        clip = (float(trainer.gradient_clip_val), trainer.gradient_clip_algorithm)
        trainer.gradient_clip_val = None  # public attribute; the model now clips
    model.fuse_steps(steps, datamodule.batch_size, clip)


def grouped_steps(module, images, labels):
    """One optimizer step per batch of the group ``images`` (the data module's
    :class:`~imgcls.data.augment.StepBatches`, or a tensor of ``module.step_batch_size`` slices
    of ``labels``);
    returns each step's logits and losses (the last group of a run may stop early)."""
    trainer = module.trainer
    optimizer = module.optimizers()
    backward = backward_for(module)
    step_schedules = _schedules(trainer, "step", plateau=False)
    # Lightning checks max_steps between its own steps only; global_step counts every step.
    steps_left = math.inf if trainer.max_steps < 0 else trainer.max_steps - module.global_step
    logits_seen, losses = [], []
    if isinstance(images, torch.Tensor):
        steps = zip(images.split(module.step_batch_size), labels.split(module.step_batch_size), strict=True)
    else:  # StepBatches: each step's images and its loss targets (labels, or mixed soft targets)
        steps = images
    for step_images, step_targets in steps:
        if len(losses) >= steps_left:
            break
        logits = module(step_images)
        del step_images  # what backward needs, autograd keeps: the next batch reuses this memory
        loss = module.criterion(logits, step_targets)
        optimizer.optimizer.zero_grad(set_to_none=True)  # the wrapper's would look up every attribute
        backward(loss)
        optimizer.step()  # counts global_step; clipping: the module's on_before_optimizer_step
        for schedule in step_schedules:
            schedule.step()
        logits_seen.append(logits.detach())
        losses.append(loss.detach())
    _advance_logger_steps(trainer, len(losses))
    return logits_seen, losses


def backward_for(module):
    """``module.manual_backward``, or ``Tensor.backward`` where that is all it would do: the
    strategy and precision plugin backward as Lightning's base classes do (no gradient scaler,
    no process group), no callback and not the module override a backward hook, and no
    profiler records the hooks' spans."""
    from lightning.pytorch import Callback, LightningModule
    from lightning.pytorch.plugins.precision import Precision
    from lightning.pytorch.profilers import PassThroughProfiler
    from lightning.pytorch.strategies import Strategy

    trainer = module.trainer
    hooks = ("on_before_backward", "on_after_backward")
    plain = (
        isinstance(trainer.profiler, PassThroughProfiler)
        and _inherits(trainer.strategy, Strategy, ("backward", "pre_backward", "post_backward"))
        and _inherits(trainer.precision_plugin, Precision, ("pre_backward", "backward", "post_backward"))
        and _inherits(module, LightningModule, (*hooks, "backward"))
        and all(_inherits(callback, Callback, hooks) for callback in trainer.callbacks)
    )
    return torch.Tensor.backward if plain else module.manual_backward


def _inherits(obj, base: type, methods: tuple[str, ...]) -> bool:
    """Whether ``obj``'s class takes each of ``methods`` from ``base`` unchanged."""
    return all(getattr(type(obj), name) is getattr(base, name) for name in methods)


def _advance_logger_steps(trainer, steps: int) -> None:
    """Lightning's loggers take their x-axis (epoch-end metrics, the LR monitor) from a count
    of Lightning steps. Grouped, each of those is ``steps`` optimizer steps: advance the
    count so that every x-axis stays in optimizer steps, as ``global_step`` is. The one
    private Lightning access of imgcls; tests/test_fused_steps.py guards it."""
    trainer.fit_loop.epoch_loop._batches_that_stepped += steps - 1  # Lightning adds the last


def step_schedulers(module, interval: str, plateau: bool) -> None:
    """What Lightning's automatic optimization does with the schedules at each ``interval``;
    a plateau schedule steps on the monitored metric."""
    trainer = module.trainer
    for scheduler in _schedules(trainer, interval, plateau):
        if not plateau:
            scheduler.step()
            continue
        monitor = module.hparams.monitor
        if monitor not in trainer.callback_metrics:
            raise KeyError(
                f"the plateau schedule monitors {monitor!r}, which was not logged; "
                f"logged: {sorted(trainer.callback_metrics)}"
            )
        scheduler.step(trainer.callback_metrics[monitor])


def _schedules(trainer, interval: str, plateau: bool) -> list:
    return [
        config.scheduler
        for config in trainer.lr_scheduler_configs
        if config.interval == interval and isinstance(config.scheduler, ReduceLROnPlateau) == plateau
    ]


def optimizer_steps(trainer, fused_steps: int, batch_size: int) -> int:
    """The run's optimizer steps, what a per-step schedule spans.

    Lightning's estimate counts its own steps; grouped, each is ``fused_steps`` optimizer
    steps but the last of an epoch, which holds what is left.
    """
    estimate = int(trainer.estimated_stepping_batches)
    if fused_steps == 1:
        return estimate
    samples = len(trainer.train_dataloader.sampler)  # this process's share of an epoch
    per_epoch = min(trainer.num_training_batches * fused_steps, math.ceil(samples / batch_size))
    total = per_epoch * trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else math.inf
    if trainer.max_steps and trainer.max_steps > 0:
        total = min(total, trainer.max_steps)
    return int(total) if total != math.inf else estimate * fused_steps
