"""timm models by name: local and cached hub weights (loaded without running code), the head
sized by timm, timm's preprocessing, the fine-tuning strategies, and clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import compose_config

from imgcls.models.timm_net import TimmNet
from imgcls.models.weights import PretrainedWeightsMissing

timm = pytest.importorskip("timm")
safetensors_torch = pytest.importorskip("safetensors.torch")

NAME = "resnet10t"  # 4.9 M parameters; at 32 px a step takes milliseconds


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache that never reaches the network."""
    cache = tmp_path / "hf_hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def imagenet_state(name: str = NAME, fill: float | None = 0.03125) -> dict[str, torch.Tensor]:
    """A random state dict of timm's ``name`` with its 1000-class ImageNet head; the stem marked."""
    state = timm.create_model(name).state_dict()
    if fill is not None:
        state["conv1.0.weight"].fill_(fill)
    return state


@pytest.mark.e2e
def test_a_local_safetensors_file_loads_and_one_epoch_trains(tmp_path, hub_cache):
    from imgcls.training.run import train

    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(imagenet_state(), str(path))
    cfg = compose_config(
        "model=timm",
        f"model.name={NAME}",
        f"model.weights_file={path}",
        "model.input_size=[32,32]",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2",
        "data.batch_size=32",
        "logger=none",
        "report=false",
        output_dir=tmp_path / "run",
    )
    train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["epochs_trained"] == 1
    assert 0.0 <= metrics["test"]["test/acc"] <= 1.0

    # The checkpoint alone rebuilds the net (weights-only read), without the weights file.
    from imgcls.models.classifier import ImageClassifier

    path.unlink()
    model = ImageClassifier.from_checkpoint(metrics["best_checkpoint"])
    assert type(model.net).__name__ == "TimmNet" and model.net.input_size == (32, 32)
    assert torch.allclose(
        model.mean.flatten(), torch.tensor(timm.data.resolve_model_data_config(model.net.model)["mean"])
    )


def test_weights_file_head_resized_and_timm_preprocessing(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(imagenet_state(), path)  # read with weights_only
    net = TimmNet([1, 8, 8], 4, NAME, weights_file=str(path))
    assert torch.all(net.model.conv1[0].weight == 0.03125)
    assert net.head is net.model.get_classifier() and net.head.out_features == 4
    config = timm.data.resolve_model_data_config(net.model)
    assert net.input_size == tuple(config["input_size"][1:]) == (176, 176)
    assert net.input_normalization() == (list(config["mean"]), list(config["std"]))
    assert TimmNet([3, 8, 8], 4, NAME).input_normalization() is None  # no weights: the data's statistics
    assert net(torch.rand(2, 1, 8, 8)).shape == (2, 4)


def test_a_file_of_another_architecture_names_the_file_and_the_keys(tmp_path):
    path = tmp_path / "other.safetensors"
    safetensors_torch.save_file(timm.create_model("mobilenetv3_small_050").state_dict(), str(path))
    with pytest.raises(ValueError, match="not a state dict of timm's resnet10t") as error:
        TimmNet([3, 8, 8], 4, NAME, weights_file=str(path))
    message = str(error.value)
    assert str(path) in message and "missing" in message and "conv1.0.weight" in message
    assert "unexpected" in message and "blocks.0.0" in message


def test_an_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="unknown timm model 'convnext_nanoo'") as error:
        TimmNet([3, 8, 8], 4, "convnext_nanoo")
    assert "close matches: convnext_nano," in str(error.value)


def test_pretrained_offline_without_the_file_says_where_to_put_it(hub_cache):
    with pytest.raises(PretrainedWeightsMissing) as error:
        TimmNet([3, 8, 8], 4, NAME, pretrained=True)
    message = str(error.value)
    assert (
        str(hub_cache) in message and "models--timm--resnet10t" in message and "model.weights_file" in message
    )


def fake_hub_download(cache, name: str = NAME) -> None:
    """The layout huggingface_hub leaves after downloading ``name``'s weights."""
    repository = timm.models.get_pretrained_cfg(name).hf_hub_id
    folder = cache / f"models--{repository.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    (folder / "snapshots" / "0123abcd").mkdir(parents=True)
    safetensors_torch.save_file(
        imagenet_state(name, fill=-0.25), str(folder / "snapshots" / "0123abcd" / "model.safetensors")
    )


def test_pretrained_loads_the_hub_cache_without_the_network(hub_cache):
    fake_hub_download(hub_cache)
    net = TimmNet([3, 8, 8], 4, NAME, pretrained=True)
    assert torch.all(net.model.conv1[0].weight == -0.25) and net.head.out_features == 4
    rebuilt = TimmNet([3, 8, 8], 4, NAME, pretrained=True, load_weights=False)  # a checkpoint reload
    assert rebuilt.input_normalization() == net.input_normalization()


def test_frozen_trains_only_the_head_and_gradual_unfreezes():
    net = TimmNet([3, 8, 8], 3, NAME, finetune="frozen", input_size=[32, 32])
    groups = net.parameter_groups(lr=0.1)
    assert [group["name"] for group in groups] == ["head"]
    assert all(not p.requires_grad for p in net.backbone_parameters())
    net.train()
    assert not net.model.bn1.training and net.head.training  # frozen BatchNorm statistics
    gradual = TimmNet([3, 8, 8], 3, NAME, finetune="gradual", backbone_lr_mult=0.1)
    assert [type(c).__name__ for c in gradual.training_callbacks()] == ["GradualUnfreezing"]
    full = TimmNet([3, 8, 8], 3, NAME, backbone_lr_mult=0.1)
    assert {g["name"]: g["lr"] for g in full.parameter_groups(1.0)} == {"backbone": 0.1, "head": 1.0}


def test_listing_says_which_weights_are_already_here(hub_cache, torch_home, capsys):
    from imgcls.models.list import main
    from imgcls.models.weights import resolve_weights, weights_file

    fake_hub_download(hub_cache)
    assert main(["--timm", "resnet10t", "--format", "csv"]) == 0
    assert "resnet10t.c3_in1k,timm/resnet10t.c3_in1k,176,1000,True" in capsys.readouterr().out
    assert main(["--timm", "mobilenetv3_small_050", "--format", "csv"]) == 0
    assert (
        "mobilenetv3_small_050.lamb_in1k,timm/mobilenetv3_small_050.lamb_in1k,224,1000,False"
        in capsys.readouterr().out
    )

    cached = weights_file(resolve_weights("alexnet", pretrained=True))
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert main(["alexnet", "--format", "csv"]) == 0
    assert "alexnet-owt-7be5be79.pth,True" in capsys.readouterr().out
