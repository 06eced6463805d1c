"""model=cnn adapts its pooling to the input size; the seed's exact net stays available."""

from __future__ import annotations

import logging

import pytest
import torch
from hydra.utils import instantiate

from imgcls.models.nets import SmallCNN


def _cnn(config_factory, model: str, shape):
    return instantiate(config_factory(f"model={model}").model.net)(input_shape=list(shape), num_classes=10)


@pytest.mark.parametrize(
    ("shape", "feature_map"),
    [((1, 28, 28), (3, 3)), ((3, 32, 32), (4, 4)), ((1, 8, 8), (4, 4)), ((3, 224, 224), (14, 14)), ((1, 80, 60), (5, 3))],
)
def test_default_cnn_keeps_a_feature_map_of_at_least_3x3(config_factory, shape, feature_map):
    for model in ("cnn", "cnn_bn"):
        net = _cnn(config_factory, model, shape)
        assert net.feature_map == feature_map
        assert net.features(torch.zeros(2, *shape)).shape[-2:] == feature_map
        assert net(torch.zeros(2, *shape)).shape == (2, 10)


def test_cnn_casia_is_the_seed_net_and_warns_when_it_collapses_the_map(config_factory, caplog):
    seed = _cnn(config_factory, "cnn_casia", (1, 80, 60))
    assert seed.feature_map == (5, 3)  # seed 004's Keras summary: pool3 (None, 5, 3, 64)
    assert sum(p.numel() for p in seed.parameters()) == 160 + 4640 + 18496 + (960 * 64 + 64) + (64 * 10 + 10)
    with caplog.at_level(logging.WARNING, logger="imgcls"):
        collapsed = _cnn(config_factory, "cnn_casia", (1, 28, 28))
    assert collapsed.feature_map == (1, 1)
    assert "pool_sizes=[2, 2, 4] shrinks the 28x28 input to a 1x1 feature map" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgcls"):
        _cnn(config_factory, "cnn", (1, 28, 28))
    assert caplog.text == ""


def test_bad_pool_sizes_are_named():
    with pytest.raises(ValueError, match="pool_sizes must be 'auto'"):
        SmallCNN((1, 28, 28), 10, pool_sizes="big")
    with pytest.raises(ValueError, match="same length"):
        SmallCNN((1, 28, 28), 10, pool_sizes=[2, 2])
