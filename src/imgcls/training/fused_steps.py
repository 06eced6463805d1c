"""Several optimizer steps per Lightning step (Keras calls it ``steps_per_execution``).

Lightning's bookkeeping around each training step (hooks, progress, logging checks) costs
about 0.6 ms here, plus the DataLoader's per-batch work: 15-20% of a small model's step on
CPU. With ``fused_steps=k`` the train loader hands over k batches at once, augmented in one
go, and the model steps through them under Lightning's manual optimization, calling
``backward`` and the torch optimizer itself: the same batches and optimizer steps, with
Lightning's bookkeeping paid once per k steps.

As with Keras' ``steps_per_execution``, per-batch callback hooks run once per group, and the
per-step backward/optimizer hooks (``on_before_backward``, ``on_after_backward``,
``on_before_optimizer_step``) do not run: use ``fused_steps=1`` for callbacks that need them.
``auto`` uses 1 where Lightning must drive each step itself: DDP (one backward per forward),
its gradient clipping and accumulation (refused under manual optimization), and 16-bit
mixed precision (its gradient scaler).
"""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import ReduceLROnPlateau

from imgcls.config import ConfigError

# auto: up to this many steps, while a group's images (uint8, as loaded) stay within
# AUTO_GROUP_BYTES. Small images have short steps, where the bookkeeping counts; large
# images have long steps, and a group of them would only hold memory (4x as floats).
AUTO_MAX_FUSED_STEPS = 16
AUTO_GROUP_BYTES = 32 * 2**20


def resolve_fused_steps(setting, trainer, batch_bytes: int = 0) -> int:
    """``fused_steps`` (``auto`` or a count) for this trainer and a batch of ``batch_bytes``."""
    blockers = _blockers(trainer)
    if setting == "auto":
        if blockers:
            return 1
        return max(1, min(AUTO_MAX_FUSED_STEPS, AUTO_GROUP_BYTES // max(1, batch_bytes)))
    try:
        steps = int(setting)
    except (TypeError, ValueError):
        steps = 0
    if steps < 1:
        raise ConfigError(f"fused_steps must be 'auto' or a count >= 1, got {setting!r}")
    if steps > 1 and blockers:
        raise ConfigError(
            f"fused_steps={steps} runs Lightning's manual optimization, which {' and '.join(blockers)} "
            "cannot use: set fused_steps=1 (or auto)"
        )
    return steps


def _blockers(trainer) -> list[str]:
    blockers = []
    if trainer.world_size > 1:
        blockers.append(f"a {trainer.world_size}-process run (trainer.devices)")
    if trainer.accumulate_grad_batches > 1:
        blockers.append("trainer.accumulate_grad_batches")
    if trainer.gradient_clip_val:
        blockers.append("trainer.gradient_clip_val")
    if getattr(trainer.precision_plugin, "scaler", None) is not None:
        blockers.append(f"trainer.precision={trainer.precision} (its gradient scaler)")
    return blockers


def optimizer_steps(trainer, fused_steps: int, batch_size: int) -> int:
    """The run's optimizer steps, what a per-step schedule spans.

    Lightning's estimate counts its own steps; fused, each is ``fused_steps`` optimizer steps
    but the last of an epoch, which holds what is left.
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


def count_steps(trainer, steps: int) -> None:
    """Tell Lightning about ``steps`` optimizer steps taken outside its optimizer wrapper: its
    step count (``trainer.global_step``: checkpoints, ``max_steps``, schedules) and its
    loggers' x-axis, which otherwise counts Lightning steps. Both are private counters;
    tests/test_fused_steps.py checks that they still drive ``global_step`` and the logs."""
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    for _ in range(steps):
        progress.increment_ready()
        progress.increment_completed()
    trainer.fit_loop.epoch_loop._batches_that_stepped += steps - 1  # Lightning adds the last


def step_schedulers(trainer, interval: str, plateau: bool, monitor: str | None = None) -> None:
    """What Lightning's automatic optimization does with the schedules at each ``interval``;
    a plateau schedule steps on the ``monitor`` metric."""
    for config in trainer.lr_scheduler_configs:
        if config.interval != interval or isinstance(config.scheduler, ReduceLROnPlateau) != plateau:
            continue
        if not plateau:
            config.scheduler.step()
        elif monitor in trainer.callback_metrics:
            config.scheduler.step(trainer.callback_metrics[monitor])
        else:
            raise KeyError(
                f"the plateau schedule monitors {monitor!r}, which was not logged; "
                f"logged: {sorted(trainer.callback_metrics)}"
            )
