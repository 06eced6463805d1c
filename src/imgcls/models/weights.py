"""Torchvision's pretrained classification weights: which exist, where they are cached, how they arrive.

The one place that knows:

* the torchvision classification models (:func:`available_models`) and their weights
  (:func:`weights_choices`);
* which weights a name means (:func:`resolve_weights`: ``IMAGENET1K_V2``,
  ``ResNet50_Weights.IMAGENET1K_V2``, ``DEFAULT``, or ``pretrained=True`` for ``DEFAULT``),
  with an error that names the valid choices;
* the file torchvision's loader reads (:func:`weights_file`:
  ``$TORCH_HOME/hub/checkpoints/<file name of the URL>``, from ``torch.hub.get_dir()``);
* how that file gets there (:func:`ensure_weights_file`): the cache is checked first, so an
  offline machine with the file never touches the network; otherwise it is downloaded with a
  timeout on each network operation (no process-wide ``socket`` setting), checked against the
  hash prefix in its name, and renamed into place only when complete. A failure raises
  :class:`PretrainedWeightsMissing`, which says which file to put where and where to get it;
* building a model with them (:func:`pretrained_model`), for training and for prediction.

torch and torchvision are imported inside the functions: ``python -m imgcls.models.list``
and the config checks import this module without paying for them up front.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from imgcls.errors import UserError

if TYPE_CHECKING:
    from torch import nn
    from torchvision.models import WeightsEnum

# Seconds one network operation (connecting, each read) may wait before the download fails.
DOWNLOAD_TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 20


class PretrainedWeightsMissing(UserError, FileNotFoundError):
    """The weights file is not in the cache and could not be downloaded."""


class DownloadError(UserError, OSError):
    """A download arrived incomplete or with the wrong hash."""


def available_models() -> list[str]:
    """Every classification model torchvision builds by name."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def weights_choices(name: str) -> type[WeightsEnum]:
    """The weights enum of the classification model ``name`` (e.g. ``ResNet50_Weights``)."""
    import torchvision

    models = available_models()
    if name not in models:
        raise ValueError(
            f"unknown torchvision model {name!r}; `python -m imgcls.models.list` lists the "
            f"{len(models)} available ones"
        )
    return torchvision.models.get_model_weights(name)


def resolve_weights(name: str, weights: str | None = None, pretrained: bool = False) -> WeightsEnum | None:
    """The weights ``weights`` names (``IMAGENET1K_V2``, ``ResNet50_Weights.IMAGENET1K_V2`` or
    ``DEFAULT``), the default ones when only ``pretrained`` is set, or None (random initialization).

    An unknown model or weights name is a ``ValueError`` that names the valid choices.
    """
    choices = weights_choices(name)
    if not weights and not pretrained:
        return None
    key = weights or "DEFAULT"
    key = key.removeprefix(f"{choices.__name__}.")
    try:
        return choices[key]
    except KeyError:
        known = ", ".join(member.name for member in choices)
        raise ValueError(f"{name} has no weights {weights!r}; choose one of: {known}, DEFAULT") from None


def cache_dir() -> Path:
    """The folder torchvision's loader reads weights from: ``<torch.hub.get_dir()>/checkpoints``
    (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_file(weights: WeightsEnum) -> Path:
    """Where torchvision caches ``weights``: ``$TORCH_HOME/hub/checkpoints/<file name of the URL>``
    (the name ``torch.hub.load_state_dict_from_url`` gives it)."""
    return cache_dir() / os.path.basename(urlparse(weights.url).path)


def hash_prefix(file_name: str) -> str | None:
    """The SHA-256 prefix in a torch.hub file name (``resnet50-11ad3fa6.pth`` -> ``11ad3fa6``),
    by ``torch.hub``'s own rule (``HASH_REGEX``); None when the name has none."""
    import torch.hub

    match = torch.hub.HASH_REGEX.search(file_name)
    return match.group(1) if match else None


def ensure_weights_file(weights: WeightsEnum, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """The cached weights file, downloaded first if it is missing (when the network allows).

    The cache is checked first, so an offline machine with the file never touches the network.
    A failed download (no network, a timeout, an HTTP error, a wrong hash) raises
    :class:`PretrainedWeightsMissing` and leaves nothing at the cache path.
    """
    path = weights_file(weights)
    if path.is_file():
        return path
    try:
        download(weights.url, path, hash_prefix(path.name), timeout=timeout)
    except (OSError, http.client.HTTPException, ValueError) as error:  # ValueError: a malformed URL
        raise PretrainedWeightsMissing(
            f"pretrained weights {weights} are not in the cache and could not be downloaded "
            f"({type(error).__name__}: {error}). Put the file {path.name} into {path.parent} "
            f"(download it from {weights.url}), or set TORCH_HOME to a directory whose "
            f"hub/checkpoints/ holds it."
        ) from error
    return path


def download(
    url: str,
    path: Path,
    expected_hash_prefix: str | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
    progress: bool | None = None,
) -> Path:
    """Stream ``url`` into a temporary file next to ``path``, check its length and SHA-256
    prefix, then rename it to ``path`` (atomic: ``path`` is either absent or complete).

    ``timeout`` bounds each network operation of this request only (``urlopen(timeout=...)``).
    ``progress``: a progress bar on stderr; default: when stderr is a terminal.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    partial = Path(partial_name)
    try:
        digest = hashlib.sha256()
        request = urllib.request.Request(url, headers={"User-Agent": "imgcls"})
        with os.fdopen(descriptor, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            received = 0
            with _progress_bar(expected, path.name, progress) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if expected is not None and received != expected:
            raise DownloadError(f"{url} ended after {received} of {expected} bytes")
        actual = digest.hexdigest()
        if expected_hash_prefix and not actual.startswith(expected_hash_prefix):
            raise DownloadError(
                f"{url} has SHA-256 {actual}, its file name expects one starting with {expected_hash_prefix}"
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _progress_bar(total: int | None, name: str, enabled: bool | None) -> Any:
    from tqdm import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=f"Downloading {name}",
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not enabled,
    )


def pretrained_model(name: str, weights: WeightsEnum, **builder_args) -> nn.Module:
    """torchvision's ``name`` with ``weights``: :func:`ensure_weights_file` provides the file,
    then torchvision's builder loads its state dict from that cache path (and applies the
    architecture's own adjustments: class count, old key names, input transforms). Training
    (``TorchvisionNet``) and prediction (``imgcls.inference.loading``) both build through here."""
    import torchvision

    ensure_weights_file(weights)
    return torchvision.models.get_model(name, weights=weights, **builder_args)
