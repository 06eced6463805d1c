"""TensorBoard's HPARAMS tab, filled with a run's real final metrics."""

from __future__ import annotations

from collections.abc import Mapping

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


def hparams_from_config(cfg: DictConfig) -> dict[str, object]:
    flat: dict[str, object] = {}
    for key in HPARAM_GROUPS:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, DictConfig):
            _flatten(OmegaConf.to_container(value, resolve=True), key, flat)
        else:
            flat[key] = value
    return flat


def log_final_hparams(loggers, cfg: DictConfig, metrics: Mapping[str, float]) -> None:
    """Write the experiment's hyper-parameters with its final metrics as ``hp/<split>_<name>``."""
    params = hparams_from_config(cfg)
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
