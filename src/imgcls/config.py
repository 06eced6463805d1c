"""Config checks, run naming and display, done before anything heavy is imported."""

from __future__ import annotations

import hashlib
import math
import os
import re
from datetime import datetime

from omegaconf import DictConfig, ListConfig, OmegaConf

from imgcls.errors import UserError

# Longest run-directory name taken from the overrides; a longer one keeps its start and ends
# with a short hash of the whole (the timestamp or job number in front keeps it unique).
MAX_NAME_LENGTH = 120
# The keys a sweep varies, which the sweep's Hydra callback (training/sweep.py) hands to its
# jobs through the environment, so that each job's directory is named by them.
SWEPT_KEYS_ENV = "IMGCLS_SWEPT_KEYS"
# A sweep directory's name (start time and process id), fixed in the process that starts the
# sweep and inherited by jobs that a launcher runs in other processes (hydra/launcher=parallel).
SWEEP_STAMP_ENV = "IMGCLS_SWEEP_STAMP"


def run_name(override_dirname: str) -> str:
    """A readable directory name from Hydra's override string (``key-value+key-value``).

    Only characters that Hydra's override grammar takes unquoted are kept, so the run's
    path can be passed back on the command line (``ckpt_path=outputs/.../last.ckpt``).
    """
    if not override_dirname:
        return "default"
    name = override_dirname.replace("/", "-").replace("\\", "-")
    name = re.sub(r"[^\w.+\-]", "_", name)
    return shorten(name)


def shorten(name: str, limit: int = MAX_NAME_LENGTH) -> str:
    """``name`` if it fits in ``limit`` characters, else its start and a short hash of all of
    it: two long names that differ only at their ends stay different."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(digest) - 1]}-{digest}"


def job_name(job_num: int, task_overrides, dirname_config) -> str:
    """A sweep job's directory: zero-padded number (sorts right), then the overrides the sweep
    varies (``003_optimizer.lr-0.0001``); those every job shares are left out. Without swept
    keys (a ``-m`` run that sweeps nothing), every override, as a single run's name.

    ``task_overrides``: the job's ``hydra.overrides.task``; ``dirname_config``: Hydra's
    ``hydra.job.config.override_dirname`` (separators, excluded keys).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    swept = {key for key in os.environ.get(SWEPT_KEYS_ENV, "").split(",") if key}
    excluded = set(dirname_config.get("exclude_keys") or ())
    overrides = OverridesParser.create().parse_overrides(list(task_overrides))
    named = [o for o in overrides if o.key_or_group not in excluded and (not swept or o.key_or_group in swept)]
    lines = sorted(o.input_line for o in named)
    dirname = dirname_config.get("item_sep", ",").join(lines).replace("=", dirname_config.get("kv_sep", "="))
    return f"{int(job_num):03d}_{run_name(dirname)}"


def optuna_direction(mode: str) -> str:
    """``monitor.mode`` (min/max) as the direction an Optuna study takes."""
    directions = {"min": "minimize", "max": "maximize"}
    if mode not in directions:
        raise ConfigError(f"monitor.mode must be 'min' or 'max', got {mode!r}")
    return directions[mode]


def sweep_stamp() -> str:
    """``<start time>-<pid>`` of the sweep: its jobs, in whichever process, share one directory.
    (Hydra's ``now`` resolver and a job's own pid differ in each worker process.)"""
    if SWEEP_STAMP_ENV not in os.environ:
        os.environ[SWEEP_STAMP_ENV] = f"{datetime.now():%Y-%m-%d_%H-%M-%S-%f}-{os.getpid()}"
    return os.environ[SWEEP_STAMP_ENV]


def gpu_count() -> int:
    """The GPUs this process sees, at least 1 (a job count). Reads NVML: CUDA stays uninitialised."""
    import torch

    return max(torch.cuda.device_count(), 1)


def register_resolvers() -> None:
    resolvers = {
        "imgcls.run_name": run_name,
        "imgcls.job_name": job_name,
        "imgcls.optuna_direction": optuna_direction,
        # In run-directory names: two runs started in the same microsecond still differ.
        "imgcls.pid": os.getpid,
        "imgcls.sweep_stamp": sweep_stamp,
        # hydra/launcher=parallel: one sweep job per GPU at a time (one at a time without GPUs).
        "imgcls.gpu_count": gpu_count,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


class ConfigError(UserError, ValueError):
    """A config value is missing or wrong; raised before any data is loaded."""

    kind = "Config error"


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
        # word_wrap: redirected to a file the console is 80 columns wide, and long paths must wrap, not be cut.
        syntax = Syntax(text.rstrip(), "yaml", background_color="default", word_wrap=True)
        tree.add(f"[bold]{key}[/bold]").add(syntax)
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
    ("projector.max_images", int, 1),
    ("projector.thumbnail_size", int, 1),
)
MONITORABLE = ("val/loss", "val/acc", "val/precision", "val/recall", "val/f1", "val/top5", "val/kappa")


# TensorBoard's projector refuses a sprite (every thumbnail on one square image) larger than this a side.
MAX_SPRITE_SIDE = 8192


def check_projector(projector) -> None:
    """Refuse, before any data is read, projector settings whose sprite TensorBoard could not show."""
    if not projector or not projector.get("enabled", False):
        return
    images, size = int(projector.max_images), int(projector.thumbnail_size)
    side = math.ceil(math.sqrt(images)) * size
    if side > MAX_SPRITE_SIDE:
        raise ConfigError(
            f"projector: {images} thumbnails of {size} px make a {side} px sprite, above TensorBoard's "
            f"{MAX_SPRITE_SIDE}; lower projector.max_images or projector.thumbnail_size"
        )


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
    workers = OmegaConf.select(cfg, "data.decode_workers", default=None)
    if workers is not None and workers != "auto" and (_as_number(workers, int) is None or _as_number(workers, int) < 1):
        raise ConfigError(f"data.decode_workers={workers!r} must be auto or an integer >= 1")
    channels = OmegaConf.select(cfg, "data.channels", default=None)
    if channels is not None and channels not in (1, 3):
        raise ConfigError(f"data.channels={channels!r} must be 1 (grayscale) or 3 (RGB)")
    check_augment(OmegaConf.select(cfg, "data.augment", default=None))
    check_projector(cfg.get("projector"))
    monitor = OmegaConf.select(cfg, "monitor.metric", default=None)
    if monitor is not None and monitor not in MONITORABLE:
        raise ConfigError(f"monitor.metric={monitor!r} is not a validation metric; choose one of {', '.join(MONITORABLE)}")
    mode = OmegaConf.select(cfg, "monitor.mode", default="max")
    if mode not in ("min", "max"):
        raise ConfigError(f"monitor.mode={mode!r} must be 'min' or 'max'")


# data.augment's keys (data/augment.py, data/mixing.py) and their ranges: (lowest, highest)
_AUGMENT_RANGES = {
    "crop_padding": (0, None),
    "rotation": (0, None),
    "random_erasing": (0, 1),
    "mixup_alpha": (0, None),
    "cutmix_alpha": (0, None),
    "mixup_prob": (0, 1),
    "mixup_switch_prob": (0, 1),
}
_AUGMENT_FLAGS = ("hflip", "vflip", "trivialaugment")
_AUGMENT_MAPPINGS = {
    "randaugment": {"num_ops": (0, None), "magnitude": (0, 30)},
    "color_jitter": {"brightness": (0, None), "contrast": (0, None), "saturation": (0, None), "hue": (0, 0.5)},
    "random_resized_crop": {"scale": (0, 1), "ratio": (0, None)},
}


def check_augment(augment) -> None:
    """``data.augment``: known keys, numbers in range, ``[lo, hi]`` pairs ordered."""
    if augment is None:
        return
    known = (*_AUGMENT_RANGES, *_AUGMENT_FLAGS, *_AUGMENT_MAPPINGS)
    for key, value in augment.items():
        name = f"data.augment.{key}"
        if key not in known:
            raise ConfigError(f"{name} is not an augmentation setting; known: {', '.join(known)}")
        if key in _AUGMENT_RANGES:
            _check_range(name, value, *_AUGMENT_RANGES[key])
        elif key in _AUGMENT_FLAGS:
            if not isinstance(value, bool):
                raise ConfigError(f"{name}={value!r} must be true or false")
        elif value is not None and value is not True:
            if not isinstance(value, DictConfig | dict):
                raise ConfigError(f"{name}={value!r} must be null or a mapping of {', '.join(_AUGMENT_MAPPINGS[key])}")
            for inner, inner_value in value.items():
                inner_name = f"{name}.{inner}"
                if inner not in _AUGMENT_MAPPINGS[key]:
                    raise ConfigError(f"{inner_name} is not a setting; known: {', '.join(_AUGMENT_MAPPINGS[key])}")
                lowest, highest = _AUGMENT_MAPPINGS[key][inner]
                if key == "random_resized_crop":
                    _check_pair(inner_name, inner_value, lowest, highest)
                else:
                    _check_range(inner_name, inner_value, lowest, highest, integer=key == "randaugment")
    if augment.get("trivialaugment") and augment.get("randaugment") is not None:
        raise ConfigError("data.augment.trivialaugment and data.augment.randaugment are both set; choose one")


def _check_range(name, value, lowest, highest, integer=False) -> None:
    number = _as_number(value, int if integer else float)
    if number is None or not lowest <= number <= (highest if highest is not None else float("inf")):
        kind = "an integer" if integer else "a number"
        bound = f"in [{lowest}, {highest}]" if highest is not None else f">= {lowest}"
        raise ConfigError(f"{name}={value!r} must be {kind} {bound}")


def _check_pair(name, value, lowest, highest) -> None:
    pair = list(value) if not isinstance(value, str) and hasattr(value, "__len__") else None
    numbers = [_as_number(v, float) for v in pair] if pair is not None and len(pair) == 2 else None
    top = highest if highest is not None else float("inf")
    if numbers is None or None in numbers or not (lowest < numbers[0] <= numbers[1] <= top):
        bound = f"{lowest} < lo <= hi" + (f" <= {highest}" if highest is not None else "")
        raise ConfigError(f"{name}={_plain_value(value)!r} must be [lo, hi] with {bound}")


def _plain_value(value):
    return OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value


def _as_number(value, kind):
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if kind is float or isinstance(value, int) else None
    return None
