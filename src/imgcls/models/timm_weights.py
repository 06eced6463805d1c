"""timm's models and pretrained weights: which exist, where the Hugging Face hub caches them.

The one place that knows:

* the timm model names (:func:`available_models`), with close matches for a wrong one
  (:func:`check_model_name`);
* the hub repository of a model's default weights (:func:`hub_id`) and the cache it lands in
  (:func:`hub_cache_dir`: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
  ``~/.cache/huggingface/hub``, read when called so tests and users can move it);
* the cached weights file, when one is there (:func:`cached_weights_file`): a cached file is
  loaded from its path, so an offline machine with the file never touches the network;
* the message for weights that are neither cached nor downloadable (:func:`missing_message`).

timm is imported inside the functions, as torchvision is in :mod:`imgcls.models.weights`.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

# What timm's hub loader looks for, in its order (timm.models._hub.load_state_dict_from_hf).
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def available_models(pattern: str = "") -> list[str]:
    """timm's model names containing ``pattern`` (all of them without one)."""
    import timm

    return timm.list_models(f"*{pattern}*" if pattern else "")


def check_model_name(name: str) -> None:
    """A ``ValueError`` listing close matches when timm has no model ``name``."""
    import timm

    if timm.models.is_model(name):
        return
    architecture = name.split(".")[0]
    # Candidates share a part of the name; difflib puts the closest first.
    parts = {architecture, architecture.split("_")[0], architecture[: max(3, len(architecture) // 2)]}
    candidates = sorted({match for part in parts for match in timm.list_models(f"*{part}*")})
    close = difflib.get_close_matches(architecture, candidates, n=10, cutoff=0.0)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise ValueError(
        f"unknown timm model {name!r}{hint} (`python -m imgcls.models.list --timm PATTERN` lists them)"
    )


def hub_id(name: str) -> str | None:
    """The Hugging Face repository of ``name``'s default (or tagged) weights, e.g.
    ``timm/mobilenetv3_small_050.lamb_in1k``; None when timm has no pretrained weights for it."""
    import timm

    config = timm.models.get_pretrained_cfg(name)
    return getattr(config, "hf_hub_id", None) if config else None


def hub_cache_dir() -> Path:
    """Where the Hugging Face hub caches downloads (its own environment variables' rule)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home) / "hub"


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE=1``: never try the network (without it, an offline download fails only
    after the hub client's retries, about 45 s)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cached_weights_file(name: str) -> Path | None:
    """The cached weights file of ``name``'s hub weights, or None when none is on this machine."""
    from huggingface_hub import try_to_load_from_cache

    repository = hub_id(name)
    if not repository:
        return None
    for file_name in HUB_FILES:
        found = try_to_load_from_cache(repository, file_name, cache_dir=hub_cache_dir())
        if isinstance(found, str):
            return Path(found)
    return None


def missing_message(name: str, error: BaseException | None = None) -> str:
    repository = hub_id(name)
    if not repository:
        return (
            f"timm has no pretrained weights for {name}; set model.weights_file=/path/to/weights.safetensors"
        )
    cause = f" ({type(error).__name__}: {error})" if error else " (HF_HUB_OFFLINE is set)"
    return (
        f"pretrained weights of timm's {name} are not in the Hugging Face cache {hub_cache_dir()} and "
        f"could not be downloaded{cause}. Either download https://huggingface.co/{repository} "
        f"(its {HUB_FILES[0]}) on a machine online and copy the cache folder "
        f"models--{repository.replace('/', '--')} into {hub_cache_dir()} (or set HF_HUB_CACHE), or put "
        f"the file anywhere and set model.weights_file=/path/to/{HUB_FILES[0]} (.safetensors or .pth)."
    )
