"""Optimizers and learning-rate schedules built from their Hydra configs.

An optimizer config is a ``_partial_`` of any ``torch.optim`` class. A schedule config is::

    factory: {_target_: <lr_scheduler class>, _partial_: true, ...}   # or null for none
    interval: epoch | step
    warmup: 0                  # warm-up length, in ``interval`` units
    warmup_start_factor: 0.1   # the learning rate starts at this fraction of its value

A ``null`` ``T_max`` (cosine) or ``total_steps`` (one-cycle) is filled with the length of
the schedule after warm-up, so the schedule always ends with the training run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from hydra.utils import instantiate
from torch.optim.lr_scheduler import LinearLR, LRScheduler, ReduceLROnPlateau, SequentialLR

_LENGTH_KEYS = ("T_max", "total_steps")


def build_optimizer(config: Mapping, params: Iterable) -> torch.optim.Optimizer:
    return instantiate(config)(params)


def build_scheduler(
    config: Mapping | None, optimizer: torch.optim.Optimizer, total_length: int, monitor: str
) -> dict | None:
    """Return Lightning's ``lr_scheduler`` dict, or None when no schedule is configured.

    ``total_length`` is the run's length in the schedule's ``interval`` units.
    """
    if not config or not config.get("factory"):
        return None
    warmup = int(config.get("warmup", 0) or 0)
    factory = dict(config["factory"])
    for key in _LENGTH_KEYS:
        if key in factory and factory[key] is None:
            factory[key] = max(1, total_length - warmup)
    scheduler: LRScheduler | ReduceLROnPlateau = instantiate(factory)(optimizer)
    if warmup:
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(
                "scheduler.warmup is not supported with the plateau schedule; set scheduler.warmup=0"
            )
        ramp = LinearLR(
            optimizer, start_factor=float(config.get("warmup_start_factor", 0.1)), total_iters=warmup
        )
        scheduler = SequentialLR(optimizer, [ramp, scheduler], milestones=[warmup])
    result = {"scheduler": scheduler, "interval": config.get("interval", "epoch"), "frequency": 1}
    if isinstance(scheduler, ReduceLROnPlateau):
        result["monitor"] = monitor
    return result


def rescale_learning_rates(optimizer: torch.optim.Optimizer, schedulers: Iterable, factor: float) -> None:
    """Multiply every learning rate an optimizer and its schedules hold by ``factor``.

    What ``optimizer.lr=<new>`` means for a run that already has a restored optimizer and
    schedule: the whole learning-rate curve scaled by new / old from where it is, each
    parameter group keeping its own ratio (e.g. a backbone's ``backbone_lr_mult``).
    """
    for group in optimizer.param_groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):  # the last two: one-cycle's
            if key in group:
                group[key] *= factor
    for scheduler in schedulers:
        # Through the schedule's own state dict: a sequence (warm-up, then the schedule)
        # keeps its inner schedules' base rates there.
        state = scheduler.state_dict()
        _scale_rates(state, factor)
        scheduler.load_state_dict(state)


def _scale_rates(state: dict, factor: float) -> None:
    for key, value in state.items():
        if key in ("base_lrs", "_last_lr") and isinstance(value, list):
            state[key] = [rate * factor for rate in value]
        elif isinstance(value, dict):
            _scale_rates(value, factor)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _scale_rates(item, factor)
