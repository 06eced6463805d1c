"""A run's reproducibility manifest, ``manifest.json``: which code, packages, command, seed,
machine and data produced it. Its one owner.

Written by rank zero when the run starts (atomically), so a failed or interrupted run has
one too. The data fingerprint changes when any image, label or file of any split changes
(file datasets: each file's path, size and modification time; array datasets: the arrays).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from imgcls.temp_files import temporary_path

MANIFEST_FILE = "manifest.json"
PACKAGES = (
    "imgcls", "torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "omegaconf",
    "numpy", "scikit-learn", "pandas", "pillow", "timm",
)  # fmt: skip


def git_state(directory: Path) -> dict[str, object]:
    """The commit checked out at ``directory`` and whether tracked files differ from it; both
    None outside a git checkout (an installed package) or without git."""
    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", *args], cwd=directory, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> dict[str, object]:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "cuda": torch.version.cuda if gpus else None,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_manifest(cfg, datamodule) -> dict[str, object]:
    return {
        "git": git_state(Path(__file__).resolve().parent),
        "packages": package_versions(),
        "command": [sys.executable, *sys.argv],
        "seed": cfg.get("seed"),
        "machine": machine(),
        "data": datamodule.fingerprint(),
    }


def write_manifest(run_dir: str | Path, manifest: dict) -> Path:
    path = Path(run_dir) / MANIFEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    temporary.write_text(json.dumps(manifest, indent=2, default=str))
    os.replace(temporary, path)
    return path


