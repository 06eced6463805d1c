"""data=photo_crops: CIFAR-shaped uint8 splits with balanced labels, the same for a seed."""

import torch
from conftest import compose_config
from hydra.utils import instantiate

from imgcls.data.photo_crops import PhotoCropsDataModule


def splits(**kwargs):
    datamodule = PhotoCropsDataModule(**{"train_size": 60, "val_size": 25, "test_size": 20, **kwargs})
    datamodule.setup("fit")
    return datamodule


def test_splits_are_cifar_shaped_uint8_and_balanced():
    datamodule = splits()
    assert datamodule.input_shape == [3, 32, 32]
    assert datamodule.class_names == [f"class{k}" for k in range(10)]
    for name, size in (("train", 60), ("val", 25), ("test", 20)):
        split = getattr(datamodule.splits, name)
        assert split.images.dtype == torch.uint8 and tuple(split.images.shape) == (size, 3, 32, 32)
        counts = torch.bincount(split.labels, minlength=10)
        assert counts.max() - counts.min() <= 1, (name, counts)
    assert datamodule.class_counts == [6] * 10
    # Real photo crops: far from constant, and the splits are different crops.
    assert datamodule.splits.train.images.float().std() > 20
    assert not torch.equal(datamodule.splits.val.images[:20], datamodule.splits.test.images)


def test_a_seed_gives_the_same_splits_another_seed_others():
    first, again, other = splits(seed=3), splits(seed=3), splits(seed=4)
    for name in ("train", "val", "test"):
        a, b, c = (getattr(d.splits, name) for d in (first, again, other))
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert not torch.equal(a.images, c.images)


def test_the_config_option_builds_the_module(tmp_path):
    cfg = compose_config("data=photo_crops", "data.train_size=30", "data.num_classes=3", output_dir=tmp_path)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    assert isinstance(datamodule, PhotoCropsDataModule)
    assert datamodule.num_classes == 3 and len(datamodule.splits.train) == 30
    assert datamodule.batch_size == 128 and datamodule.augment.crop_padding == 4
