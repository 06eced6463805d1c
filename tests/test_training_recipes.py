"""The modern training recipes (conf/experiment/cifar10_resnet_recipe.yaml, folder_finetune.yaml)
compose with the config tree and build what they name."""

from __future__ import annotations

from conftest import compose_config


def test_cifar10_recipe_composes_with_ema_mixup_cutmix_and_trivialaugment(tmp_path):
    from hydra.utils import instantiate

    from imgcls.config import check_values
    from imgcls.training.run import build_callbacks
    from imgcls.training.weight_averaging import EMA

    cfg = compose_config("experiment=cifar10_resnet_recipe", output_dir=tmp_path)
    check_values(cfg)  # every value in range, the augmentation keys known
    assert cfg.model.name == "resnet18" and cfg.model.net._target_ == "imgcls.models.timm_net.TimmNet"
    datamodule = instantiate(cfg.data)  # the data module, before it loads CIFAR-10
    assert datamodule.augment.policy is not None and not datamodule.augment.is_identity
    callbacks, _ = build_callbacks(cfg)
    (ema,) = [c for c in callbacks if isinstance(c, EMA)]
    assert cfg.callbacks.ema.decay == 0.999


def test_folder_recipe_builds_a_cached_gradual_mobilenet(tmp_path, mobilenet_torch_home):
    from imgcls.training.run import compose

    root = tmp_path / "images"
    make_folder(root)
    cfg = compose_config(
        "experiment=folder_finetune",
        f"data.root={root}",
        "data.val_fraction=0.25",
        "data.test_fraction=0.25",
        f"data.cache_dir={tmp_path / 'cache'}",
        output_dir=tmp_path / "run",
    )
    datamodule, model, trainer, _, resolved = compose(cfg)
    assert resolved["cache_features"] is True and model.net.finetune == "gradual"
    assert model.net.head is model.net.model.classifier and datamodule.augment.is_identity


def make_folder(root, per_class: int = 4) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
