"""Config checks, run naming and display, done before anything heavy is imported."""

from __future__ import annotations

import os
import re

from omegaconf import DictConfig, OmegaConf

# Longest run-directory name taken from the overrides; the rest is cut (the timestamp or
# job number in front of it keeps the directory unique).
MAX_NAME_LENGTH = 120


def run_name(override_dirname: str) -> str:
    """A readable directory name from Hydra's override string (``key-value+key-value``).

    Only characters that Hydra's override grammar takes unquoted are kept, so the run's
    path can be passed back on the command line (``ckpt_path=outputs/.../last.ckpt``).
    """
    if not override_dirname:
        return "default"
    name = override_dirname.replace("/", "-").replace("\\", "-")
    name = re.sub(r"[^\w.+\-]", "_", name)
    return name[:MAX_NAME_LENGTH]


def job_name(job_num: int, override_dirname: str) -> str:
    """A sweep job's directory: zero-padded number (sorts right), then what it overrides."""
    return f"{int(job_num):03d}_{run_name(override_dirname)}"


def optuna_direction(mode: str) -> str:
    """``monitor.mode`` (min/max) as the direction an Optuna study takes."""
    directions = {"min": "minimize", "max": "maximize"}
    if mode not in directions:
        raise ConfigError(f"monitor.mode must be 'min' or 'max', got {mode!r}")
    return directions[mode]


def register_resolvers() -> None:
    resolvers = {
        "imgcls.run_name": run_name,
        "imgcls.job_name": job_name,
        "imgcls.optuna_direction": optuna_direction,
        # In run-directory names: two runs started in the same microsecond still differ.
        "imgcls.pid": os.getpid,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


class ConfigError(ValueError):
    """A config value is missing or wrong; raised before any data is loaded."""


def check_required(cfg: DictConfig) -> None:
    """Fail with every missing ``???`` value named, and how to set it, and on ``pretrained=true``
    for a model that has no pretrained weights."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        examples = " ".join(f"{key}=..." for key in missing)
        raise ConfigError(
            f"missing required config value(s): {', '.join(missing)}. Set them on the command line: {examples}"
        )
    if cfg.get("pretrained") and "pretrained" not in cfg.model.get("net", {}):
        raise ConfigError(
            f"pretrained=true, but model={cfg.model.get('name')} has no pretrained weights; pick a "
            "torchvision model (model=resnet50, model=torchvision model.name=...; list them with "
            "`python -m imgcls.models.list`)"
        )


def print_config_tree(
    cfg: DictConfig, order: tuple[str, ...] = ("data", "model", "optimizer", "scheduler", "trainer")
) -> None:
    """Print the resolved config as a tree, the most consulted groups first."""
    from rich import print as rich_print
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    keys = [key for key in order if key in cfg] + [key for key in cfg if key not in order]
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(f"[bold]{key}[/bold]").add(Syntax(text.rstrip(), "yaml", background_color="default"))
    rich_print(tree)


# Values whose type a typo on the command line gets wrong (`trainer.max_epochs=abc`): each is
# checked before anything is loaded, with the key named. (key, kind, lowest value or None)
_TYPED_VALUES = (
    ("seed", int, None),
    ("trainer.max_epochs", int, -1),
    ("trainer.max_steps", int, -1),
    ("trainer.log_every_n_steps", int, 0),
    ("optimizer.lr", float, 0.0),
    ("data.batch_size", int, 1),
    ("data.eval_batch_size", int, 1),
    ("data.num_workers", int, 0),
    ("scheduler.warmup", int, 0),
    ("cam.mistakes", int, 0),
    ("cam.correct", int, 0),
    ("confusion_classes", int, 1),
    ("confused_pair_examples", int, 0),
)
MONITORABLE = ("val/loss", "val/acc", "val/precision", "val/recall", "val/f1", "val/top5", "val/kappa")


def check_values(cfg: DictConfig) -> None:
    """Fail on a value of the wrong type or range, naming its key, before any data is read."""
    for key, kind, lowest in _TYPED_VALUES:
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        number = _as_number(value, kind)
        if number is None:
            raise ConfigError(f"{key}={value!r} must be {'an integer' if kind is int else 'a number'}")
        if lowest is not None and (number < lowest or (key == "optimizer.lr" and number <= 0)):
            bound = "> 0" if key == "optimizer.lr" else f">= {lowest}"
            raise ConfigError(f"{key}={value!r} must be {bound}")
    size = OmegaConf.select(cfg, "data.image_size", default=None)
    if size is not None and (
        len(size) != 2 or any(_as_number(side, int) is None or _as_number(side, int) < 1 for side in size)
    ):
        raise ConfigError(f"data.image_size={list(size)} must be [H, W], two positive integers")
    channels = OmegaConf.select(cfg, "data.channels", default=None)
    if channels is not None and channels not in (1, 3):
        raise ConfigError(f"data.channels={channels!r} must be 1 (grayscale) or 3 (RGB)")
    monitor = OmegaConf.select(cfg, "monitor.metric", default=None)
    if monitor is not None and monitor not in MONITORABLE:
        raise ConfigError(f"monitor.metric={monitor!r} is not a validation metric; choose one of {', '.join(MONITORABLE)}")
    mode = OmegaConf.select(cfg, "monitor.mode", default="max")
    if mode not in ("min", "max"):
        raise ConfigError(f"monitor.mode={mode!r} must be 'min' or 'max'")


def _as_number(value, kind):
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if kind is float or isinstance(value, int) else None
    return None
