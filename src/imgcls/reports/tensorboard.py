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


# The HPARAMS tab's columns. TensorBoard (2.21) orders hyper-parameters by name (its backend's
# _sort_and_reduce_to_hparams_limit) and ticks only the first five (its frontend's
# tf-hparams-query-pane: Math.min(5, ...)), whatever order they were written in. So the five
# that tell runs apart get names that sort first, by their position, and optimizer and lr share
# one column (``Adam lr 0.001``) to fit in five; the numbers stay in optimizer.lr(.<group>)
# among the rest. The full experiment is in the run's resolved.yaml and .hydra/config.yaml.
LEADING = ("1 model.name", "2 optimizer, lr", "3 data.batch_size", "4 trainer.max_epochs", "5 data")
# Besides the leading five: the learning rates as numbers, for sorting and filtering runs.
NUMBERS = ("optimizer.lr", "optimizer.lr.backbone", "optimizer.lr.head")


def hparams_from_config(
    cfg: DictConfig, computed: Mapping[str, object] | None = None, swept: Sequence[str] = ()
) -> dict[str, object]:
    """The experiment's headline values (:data:`LEADING`), then the learning rates, the keys a
    sweep varies (``swept``) and ``computed``: values the run derived (each optimizer group's
    learning rate, the class weights ``balanced`` gave)."""
    flat: dict[str, object] = {}
    for key in HPARAM_GROUPS:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, DictConfig):
            _flatten(OmegaConf.to_container(value, resolve=True), key, flat)
        else:
            flat[key] = value
    flat.update(computed or {})
    leading = dict(zip(LEADING, (
        flat.get("model.name"),
        f"{_short(cfg, 'optimizer')} {_learning_rates(flat)}",
        flat.get("data.batch_size"),
        flat.get("trainer.max_epochs"),
        _short(cfg, "data"),
    ), strict=True))
    rest = {key: flat[key] for key in (*NUMBERS, *swept) if key in flat}
    return {**leading, **rest, **(computed or {})}


def _short(cfg: DictConfig, group: str) -> str:
    """A config group's class name (Adam, DigitsDataModule); the full target is in resolved.yaml."""
    return str(OmegaConf.select(cfg, f"{group}._target_", default="")).rsplit(".", 1)[-1]


def _learning_rates(flat: Mapping[str, object]) -> str:
    """``lr 0.001``, or each named group's (``lr backbone 0.0001, head 0.001``)."""
    groups = {key.rsplit(".", 1)[-1]: value for key, value in flat.items() if key.startswith("optimizer.lr.")}
    if groups:
        return "lr " + ", ".join(f"{name} {value:g}" for name, value in groups.items())
    lr = flat.get("optimizer.lr")
    return f"lr {lr:g}" if isinstance(lr, int | float) else ""


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
