"""The learning-rate and batch-size finders of Lightning's ``Tuner`` (``lr_find=``,
``batch_size_find=``): when they may run, running them, and what they leave in the run
directory. ``true`` runs a finder, saves and prints what it found, and ends the run before
training; ``apply`` then trains with it (recorded in resolved.yaml and metrics.json).

The batch-size finder grows the batch until the device runs out of memory, which only a
GPU's fixed memory makes meaningful: on a CPU it would grow into swap, so it is refused
there. Neither finder runs under DDP (the Tuner does not support it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from imgcls import console
from imgcls.config import ConfigError
from imgcls.temp_files import temporary_path

FINDERS = ("lr_find", "batch_size_find")
CHOICES = (False, True, "apply")
LR_FIND_FILE = "lr_find.json"
LR_FIND_PLOT = "lr_find.png"
BATCH_SIZE_FIND_FILE = "batch_size_find.json"
_DDP_STRATEGIES = ("ddp", "fsdp", "deepspeed")


def requested(cfg: DictConfig) -> list[str]:
    """The finders this run asks for, as ``key=value`` (what grouped steps must give way to)."""
    return [f"{key}={str(cfg.get(key)).lower()}" for key in FINDERS if cfg.get(key, False)]


def check_tuning_config(cfg: DictConfig) -> None:
    """Before any data is read: each finder's value is a valid choice, and no finder runs with
    several processes."""
    for key in FINDERS:
        value = cfg.get(key, False)
        if value not in CHOICES or (isinstance(value, int | float) and not isinstance(value, bool)):
            raise ConfigError(f"{key}={value!r} must be one of false, true (find, save, exit), apply (find, then train)")
    wanted = requested(cfg)
    if not wanted:
        return
    trainer = cfg.trainer
    strategy = str(trainer.get("strategy") or "auto").lower()
    several = _device_count(trainer.get("devices")) > 1 or int(trainer.get("num_nodes") or 1) > 1
    if several or strategy.startswith(_DDP_STRATEGIES):
        raise ConfigError(
            f"{' and '.join(wanted)} runs on one device only (Lightning's Tuner does not support DDP), but "
            f"trainer.devices={trainer.get('devices')}, trainer.num_nodes={trainer.get('num_nodes')}, "
            f"trainer.strategy={trainer.get('strategy')}: tune with trainer=default trainer.devices=1, then "
            "start the DDP run with the value found"
        )


def check_tuning_trainer(cfg: DictConfig, trainer) -> None:
    """What only the built trainer tells: its process count and its accelerator."""
    from lightning.pytorch.accelerators import CPUAccelerator

    wanted = requested(cfg)
    if wanted and trainer.world_size > 1:
        raise ConfigError(f"{' and '.join(wanted)} runs on one device only; this trainer has {trainer.world_size} processes")
    if cfg.get("batch_size_find", False) and isinstance(trainer.accelerator, CPUAccelerator):
        raise ConfigError(
            f"batch_size_find={str(cfg.batch_size_find).lower()} searches the largest batch that fits in GPU "
            "memory; on this CPU there is no such limit (it would grow into swap). Set data.batch_size "
            "yourself, or run it with trainer.accelerator=gpu; valid choices here: batch_size_find=false"
        )


def tune(cfg: DictConfig, trainer, model, datamodule, run_dir: Path) -> dict:
    """Run the requested finders (batch size first: the learning rate depends on it); return
    what they found, for metrics.json. ``apply`` has already set the values on the model and data."""
    from lightning.pytorch.tuner import Tuner

    tuner, found = Tuner(trainer), {}
    if cfg.get("batch_size_find", False):
        found["batch_size_find"] = find_batch_size(tuner, model, datamodule, cfg.batch_size_finder, run_dir)
    if cfg.get("lr_find", False):
        found["lr_find"] = find_lr(tuner, model, datamodule, cfg.lr_finder, run_dir, trainer.loggers)
        suggestion = found["lr_find"]["suggestion"]
        if cfg.lr_find == "apply" and suggestion is not None:
            model.hparams.optimizer["lr"] = suggestion  # what configure_optimizers and checkpoints read
            cfg.optimizer.lr = suggestion
        elif cfg.lr_find == "apply":
            console.warn(f"lr_find found no suggestion; training with optimizer.lr={cfg.optimizer.lr}")
    model.forget_training_batches()  # the finders' steps are no epoch of the run
    return found


def exits_after_tuning(cfg: DictConfig) -> bool:
    """``true`` (not ``apply``) for any finder: report what was found and do not train."""
    return any(cfg.get(key, False) is True for key in FINDERS)


def find_lr(tuner, model, datamodule, settings, run_dir: Path, loggers=()) -> dict:
    """``Tuner.lr_find`` with ``settings`` (cfg.lr_finder); writes lr_find.json and lr_find.png
    into ``run_dir`` and the plot to TensorBoard."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lightning.pytorch.loggers import TensorBoardLogger

    options = OmegaConf.to_container(settings, resolve=True) if isinstance(settings, DictConfig) else dict(settings)
    finder = tuner.lr_find(model, datamodule=datamodule, update_attr=False, **options)
    if finder is None:  # fast_dev_run: the Tuner skips
        raise ConfigError("lr_find does not run with trainer.fast_dev_run; drop one of them")
    suggestion = finder.suggestion()
    result = {
        "suggestion": suggestion,
        "configured_lr": float(model.hparams.optimizer["lr"]),
        **options,
        "lr": [float(v) for v in finder.results["lr"]],
        "loss": [float(v) for v in finder.results["loss"]],
    }
    figure = finder.plot(suggest=suggestion is not None, show=False)
    figure.axes[0].set_title(f"lr_find: suggestion {suggestion:.3g}" if suggestion else "lr_find: no suggestion")
    figure.savefig(run_dir / LR_FIND_PLOT, dpi=100, bbox_inches="tight")
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure("tuner/lr_find", figure, global_step=0)
    plt.close(figure)
    _write_json(run_dir / LR_FIND_FILE, result)
    console.info(
        f"lr_find: suggested learning rate {suggestion:.4g} (optimizer.lr={result['configured_lr']:g} configured); "
        f"plot {run_dir / LR_FIND_PLOT}, values {run_dir / LR_FIND_FILE}"
        if suggestion is not None
        else f"lr_find: no suggestion (the loss never fell steadily); see {run_dir / LR_FIND_PLOT}"
    )
    return {key: value for key, value in result.items() if key not in ("lr", "loss")}


def find_batch_size(tuner, model, datamodule, settings, run_dir: Path) -> dict:
    """``Tuner.scale_batch_size`` on ``datamodule.batch_size`` with ``settings``
    (cfg.batch_size_finder); writes batch_size_find.json into ``run_dir``."""
    options = OmegaConf.to_container(settings, resolve=True) if isinstance(settings, DictConfig) else dict(settings)
    configured = datamodule.batch_size
    found = tuner.scale_batch_size(model, datamodule=datamodule, batch_arg_name="batch_size", **options)
    result = {"batch_size": found, "configured_batch_size": configured, **options}
    _write_json(run_dir / BATCH_SIZE_FIND_FILE, result)
    console.info(f"batch_size_find: largest batch that fits {found} (data.batch_size={configured} configured)")
    return result


def _device_count(devices) -> int:
    if isinstance(devices, int):
        return 2 if devices == -1 else devices  # -1: every device, possibly several
    if isinstance(devices, str):
        text = devices.strip()
        if text.lstrip("-").isdigit():
            return _device_count(int(text))
        return len([part for part in text.split(",") if part.strip()]) if "," in text else 1
    if devices is not None and hasattr(devices, "__len__"):
        return len(devices)
    return 1


def _write_json(path: Path, content: dict) -> None:
    temporary = temporary_path(path)
    temporary.write_text(json.dumps(content, indent=2))
    os.replace(temporary, path)
