"""TensorBoard's HPARAMS tab, filled with a run's real final metrics."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

# The config parts that describe an experiment (paths, callbacks and loggers do not).
HPARAM_GROUPS = (
    "data",
    "model",
    "optimizer",
    "scheduler",
    "loss",
    "seed",
    "trainer.max_epochs",
    "trainer.precision",
)


# The HPARAMS tab's columns: what tells runs apart at a glance, plus what a sweep varies and
# what the run derived. TensorBoard lists hyper-parameters by name and ticks the first five,
# so a tab of every config value would show data.augment.* first; the full experiment is in
# the run's resolved.yaml and .hydra/config.yaml.
LEADING = (
    "model.name",
    "optimizer",
    "optimizer.lr",
    "optimizer.lr.backbone",
    "optimizer.lr.head",
    "data.batch_size",
    "trainer.max_epochs",
    "data",
)


def hparams_from_config(
    cfg: DictConfig, computed: Mapping[str, object] | None = None, swept: Sequence[str] = ()
) -> dict[str, object]:
    """The experiment's headline values (:data:`LEADING`), then the keys a sweep varies
    (``swept``), then ``computed``: values the run derived (each optimizer group's learning
    rate, the class weights ``balanced`` gave)."""
    flat: dict[str, object] = {}
    for key in HPARAM_GROUPS:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, DictConfig):
            _flatten(OmegaConf.to_container(value, resolve=True), key, flat)
        else:
            flat[key] = value
    # Short names (Adam, DigitsDataModule); the full targets stay among the rest.
    for group in ("optimizer", "data"):
        target = OmegaConf.select(cfg, f"{group}._target_", default=None)
        if target:
            flat[group] = str(target).rsplit(".", 1)[-1]
    flat.update(computed or {})
    shown = {key: flat[key] for key in (*LEADING, *swept) if key in flat}
    return {**shown, **(computed or {})}


def log_final_hparams(
    loggers, cfg: DictConfig, metrics: Mapping[str, float], computed: Mapping[str, object] | None = None
) -> None:
    """Write the experiment's hyper-parameters with its final metrics as ``hp/<split>_<name>``."""
    from imgcls.config import SWEPT_KEYS_ENV

    swept = [key for key in os.environ.get(SWEPT_KEYS_ENV, "").split(",") if key]
    params = hparams_from_config(cfg, computed, swept)
    final = {f"hp/{key.replace('/', '_')}": float(value) for key, value in metrics.items()}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger) and final:
            logger.log_hyperparams(params, metrics=final)
            logger.experiment.flush()


def _flatten(value, prefix: str, out: dict) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key != "_partial_":
                _flatten(item, f"{prefix}.{key}", out)
    elif isinstance(value, list | tuple):
        out[prefix] = str(list(value))
    else:
        out[prefix] = value if isinstance(value, int | float | str | bool) else str(value)
