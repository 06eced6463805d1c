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
