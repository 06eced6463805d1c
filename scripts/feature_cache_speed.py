"""The frozen-backbone feature cache, epoch by epoch: MobileNetV2 (real ImageNet weights) frozen at
224 px on labelled real photos, one CPU thread, with and without ``model.cache_features``.

    python scripts/feature_cache_speed.py --per-class 50 --torch-home DIR   # DIR/hub/checkpoints holds mobilenet_v2-b0353104.pth

The folder holds random crops (scale 0.3-0.8, flips) of the six offline photos (scikit-image's
chelsea, coffee, astronaut, rocket; scikit-learn's china, flower), one class per photo. Prints
each epoch's wall time (training and validation) and the test metrics of both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from imgcls.config import register_resolvers
from imgcls.training.run import train

CONF = Path(__file__).resolve().parents[1] / "conf"


def make_photo_folder(root: Path, per_class: int) -> Path:
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = {name: getattr(skimage.data, name)() for name in ("chelsea", "coffee", "astronaut", "rocket")}
    photos.update(zip(("china", "flower"), load_sample_images().images, strict=True))
    rng = np.random.default_rng(0)
    for name, photo in photos.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        height, width = photo.shape[:2]
        for i in range(per_class):
            scale = rng.uniform(0.3, 0.8)
            h, w = int(height * scale), int(width * scale)
            y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
            crop = photo[y : y + h, x : x + w][:, :: rng.choice([1, -1])]
            Image.fromarray(np.ascontiguousarray(crop)).resize((256, 256)).save(root / name / f"{i:03d}.png")
    return root


class EpochTimes(L.Callback):
    def __init__(self):
        self.times, self.start = [], 0.0

    def on_train_epoch_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):  # after the epoch's validation
        self.times.append(time.perf_counter() - self.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--torch-home", default=os.environ.get("TORCH_HOME"))
    args = parser.parse_args()
    if args.torch_home:
        os.environ["TORCH_HOME"] = args.torch_home
    torch.set_num_threads(1)
    register_resolvers()
    with tempfile.TemporaryDirectory() as work:
        root = make_photo_folder(Path(work) / "photos", args.per_class)
        for cache in ("true", "false"):
            timer = EpochTimes()
            overrides = [
                "data=folder", f"data.root={root}", "data.image_size=[224,224]", f"data.cache_dir={work}/cache",
                "data.augment.crop_padding=0", "data.augment.hflip=false", "model=mobilenet_v2",
                "model.weights=IMAGENET1K_V1", "model.finetune=frozen", "model.head=classifier",
                f"model.cache_features={cache}", f"trainer.max_epochs={args.epochs}", "data.batch_size=32",
                "optimizer=adam", "optimizer.lr=1e-3", "logger=none", "report=false", "print_config=false",
                "trainer.enable_progress_bar=false", f"paths.output_dir={work}/run_{cache}",
            ]  # fmt: skip
            with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                cfg = compose(config_name="train", overrides=overrides)
            train(cfg, extra_callbacks=[timer])
            test = json.loads((Path(work) / f"run_{cache}" / "metrics.json").read_text())["test"]
            print(f"cache_features={cache}: epochs {[round(t, 2) for t in timer.times]} s, test {test}")


if __name__ == "__main__":
    main()
