"""Shared test helpers: compose the real config tree and shrink it, run train.py for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from imgcls.config import register_resolvers

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"

# Quiet, single-threaded-friendly defaults for every composed test config.
TEST_OVERRIDES = (
    "print_config=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
)


def compose_config(*overrides: str, output_dir: Path | str | None = None) -> DictConfig:
    """The real ``conf/train.yaml`` with ``overrides``, as ``python train.py`` would compose it."""
    register_resolvers()
    extra = [f"paths.output_dir={output_dir}"] if output_dir is not None else []
    # Tests run offline on the real digits unless they pick a dataset themselves.
    if not any(o.startswith(("data=", "experiment=")) for o in overrides):
        extra.append("data=digits")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=[*TEST_OVERRIDES, *extra, *overrides])


def run_train_py(
    *args: str, log_dir: Path, check: bool = True, timeout: float = 600, env: dict | None = None
):
    """Run ``python train.py`` in a subprocess, with its outputs under ``log_dir``."""
    offline = [] if any(a.startswith(("data=", "experiment=")) for a in args) else ["data=digits"]
    command = [
        sys.executable,
        str(REPO / "train.py"),
        *args,
        *offline,
        f"paths.log_dir={log_dir}",
        *TEST_OVERRIDES,
    ]
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"train.py failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        )
    return result


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests run where CUDA is, and are skipped (not failed) elsewhere."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def config_factory(tmp_path):
    """``config_factory("model=mlp", ...)`` composes a config writing into a temp run dir."""
    return lambda *overrides: compose_config(*overrides, output_dir=tmp_path / "run")


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty temporary ``$TORCH_HOME``: nothing is cached, nothing can be downloaded."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def mobilenet_torch_home(torch_home):
    """A temporary ``$TORCH_HOME`` holding torchvision's real MobileNetV2 ImageNet weights."""
    from offline_assets import install_into_torch_home, mobilenet_v2_weights

    install_into_torch_home(torch_home, mobilenet_v2_weights())
    return torch_home


@pytest.fixture
def one_thread():
    """Small convolutions on a shared 2-core machine run several times faster on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
