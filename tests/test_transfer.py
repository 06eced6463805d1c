"""Transfer learning: torchvision nets by name, pretrained weights from the cache, new heads,
the weights' preprocessing, and the full / frozen / gradual fine-tuning strategies."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
import torchvision
from conftest import CONF_DIR, compose_config, run_train_py
from omegaconf import OmegaConf

from imgcls.config import ConfigError, check_required
from imgcls.models.classifier import ImageClassifier
from imgcls.models.torchvision_net import TorchvisionNet
from imgcls.models.weights import PretrainedWeightsMissing, available_models, resolve_weights, weights_file
from imgcls.training.run import train

NET = "imgcls.models.torchvision_net.TorchvisionNet"
# Builders whose default (scipy) initialization takes seconds; tests skip it.
FAST_INIT = {"googlenet": {"init_weights": False}, "inception_v3": {"init_weights": False}}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def tiny_step(name: str, input_size=None, num_classes: int = 3):
    """Build ``name`` with a new head for grayscale 8x8 data; one forward/backward step."""
    net = TorchvisionNet(
        [1, 8, 8], num_classes, name, input_size=input_size, builder_args=FAST_INIT.get(name)
    )
    net.train()
    logits = net(torch.rand(2, 1, 8, 8))
    logits.logsumexp(1).sum().backward()
    assert logits.shape == (2, num_classes)
    layer = net.model.get_submodule(net.head_layer_name)  # the head: it, or its block
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    return net


# One member of each family: the classifier is found by inspection, not by a table.
FAMILIES = {
    "resnet18": "fc",
    "alexnet": "classifier.6",
    "densenet121": "classifier",
    "mobilenet_v3_small": "classifier.3",
    "convnext_tiny": "classifier.2",
    "efficientnet_b0": "classifier.1",
    "vit_b_32": "heads.head",
    "squeezenet1_1": "classifier.1",
    "googlenet": "fc",  # with auxiliary classifiers, like inception_v3
}


@pytest.mark.e2e
@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_gets_a_new_head_and_trains_a_step(name):
    size = None if name.startswith("vit") else 80  # ViT takes only its own size
    net = tiny_step(name, input_size=size)
    assert net.head_layer_name == FAMILIES[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", available_models())
def test_every_listed_model_builds_and_takes_a_step(name):
    # The smallest input each architecture accepts keeps the big ones affordable on a CPU.
    minimum = torchvision.models.get_model_weights(name).DEFAULT.meta.get("min_size", (32, 32))
    fixed_size = name.startswith(("vit", "maxvit"))
    tiny_step(name, input_size=None if fixed_size else max(64, *minimum))


def test_grayscale_is_widened_and_resized_on_the_device_in_batches():
    net = TorchvisionNet([1, 8, 8], 4, "resnet18", input_size=[40, 48])
    seen = []
    net.model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    net(torch.rand(5, 1, 8, 8))
    assert seen == [(5, 3, 40, 48)]
    assert net.input_normalization() is None  # no weights: the data's own mean/std


# --- pretrained weights ------------------------------------------------------------------
def _digits_classifier(net: dict, optimizer_lr: float = 1e-2) -> tuple:
    """The run's own wiring (training/run.py's seams) of a torchvision net on the digits."""
    from imgcls.training.run import build_classifier, build_datamodule

    overrides = [f"model.{key}={value}".replace(" ", "") for key, value in net.items()]
    cfg = compose_config(
        "model=torchvision", "optimizer=sgd", f"optimizer.lr={optimizer_lr}", "data.batch_size=32", *overrides
    )
    data = build_datamodule(cfg)
    return build_classifier(cfg, data), data


@pytest.mark.parametrize(("photo", "expected"), [("chelsea", "cat"), ("coffee", "espresso")])
def test_pretrained_mobilenet_recognizes_real_photos_through_imgcls_preprocessing(
    mobilenet_torch_home, photo, expected
):
    skimage_data = pytest.importorskip("skimage.data")
    weights = resolve_weights("mobilenet_v2", "IMAGENET1K_V1")  # the real file the fixture installs
    categories = weights.meta["categories"]
    net = {"name": "mobilenet_v2", "weights": "IMAGENET1K_V1", "new_head": False}
    model = ImageClassifier(
        net={"_target_": NET, "_partial_": True, **net},
        num_classes=len(categories),
        class_names=categories,
        input_shape=[3, 224, 224],
        mean=[0.0, 0.0, 0.0],  # the data's statistics: the weights' own must win
        std=[1.0, 1.0, 1.0],
        optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
    ).eval()
    image = torch.from_numpy(np.ascontiguousarray(getattr(skimage_data, photo)())).permute(2, 0, 1)
    batch = model.net.photo_transform()(image).unsqueeze(0)  # float [0, 1], the weights' crop
    with torch.no_grad():
        top = categories[model(batch).argmax(1).item()]
    assert expected in top.lower(), top
    assert torch.allclose(model.mean.flatten(), torch.tensor(weights.transforms().mean))


def test_pretrained_loads_the_cached_file_and_weights_pick_by_name(torch_home):
    weights = resolve_weights("resnet18", "IMAGENET1K_V1")
    marked = torchvision.models.resnet18().state_dict()
    marked["conv1.weight"].fill_(0.125)
    weights_file(weights).parent.mkdir(parents=True)
    torch.save(marked, weights_file(weights))
    net = TorchvisionNet([3, 32, 32], 4, "resnet18", weights="IMAGENET1K_V1")
    assert torch.all(net.model.conv1.weight == 0.125)
    assert net.input_size == (224, 224) and net.input_normalization()[0] == [0.485, 0.456, 0.406]
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        TorchvisionNet([3, 32, 32], 4, "resnet18", weights="IMAGENET1K_V9")


def test_a_checkpoint_reloads_without_the_weights_file(torch_home):
    """``load_weights=False`` rebuilds net and preprocessing from the config alone; the
    checkpoint's state dict then supplies every weight (predict on another machine)."""
    weights_file(resolve_weights("resnet18", pretrained=True)).parent.mkdir(parents=True)
    torch.save(
        torchvision.models.resnet18().state_dict(), weights_file(resolve_weights("resnet18", pretrained=True))
    )
    trained = TorchvisionNet([3, 32, 32], 4, "resnet18", pretrained=True).eval()
    weights_file(resolve_weights("resnet18", pretrained=True)).unlink()
    rebuilt = TorchvisionNet([3, 32, 32], 4, "resnet18", pretrained=True, load_weights=False).eval()
    rebuilt.load_state_dict(trained.state_dict())
    assert rebuilt.input_normalization() == trained.input_normalization() and rebuilt.input_size == (224, 224)
    images = torch.rand(2, 3, 32, 32)
    assert torch.equal(rebuilt(images), trained(images))


def test_weights_path_loads_a_local_state_dict(tmp_path):
    marked = torchvision.models.resnet18().state_dict()
    marked["conv1.weight"].fill_(-0.5)
    torch.save(marked, tmp_path / "mine.pth")
    net = TorchvisionNet([3, 32, 32], 4, "resnet18", weights_path=str(tmp_path / "mine.pth"))
    assert torch.all(net.model.conv1.weight == -0.5)
    assert net.input_normalization() is not None  # an ImageNet-layout file: ImageNet preprocessing


def test_missing_weights_name_the_file_the_directory_and_the_url(torch_home, monkeypatch):
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # never download, even when online
    with pytest.raises(PretrainedWeightsMissing) as error:
        TorchvisionNet([3, 32, 32], 4, "resnet18", pretrained=True)
    message = str(error.value)
    path = weights_file(resolve_weights("resnet18", pretrained=True))
    assert path.name in message and str(path.parent) in message and "https://download.pytorch.org" in message


@pytest.mark.e2e
def test_train_py_resnet50_pretrained_from_the_cache_and_a_clear_error_without(
    tmp_path, torch_home, monkeypatch
):
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # never download, even when online
    args = ("model=resnet50", "pretrained=true", "model.input_size=[32,32]", "logger=csv", "debug=fast")
    checkpoints = torch_home / "hub" / "checkpoints"

    # Without the file: the run stops before training, naming the file and where it goes.
    with pytest.raises(PretrainedWeightsMissing, match="resnet50-11ad3fa6.pth") as error:
        train(compose_config(*args, output_dir=tmp_path / "missing"))
    assert str(checkpoints) in str(error.value)
    assert json.loads((tmp_path / "missing" / "metrics.json").read_text())["status"] == "failed"

    # With torchvision's file in the cache: `python train.py model=resnet50 pretrained=true` runs.
    torch.save(torchvision.models.resnet50().state_dict(), checkpoints / "resnet50-11ad3fa6.pth")
    result = run_train_py(*args, log_dir=tmp_path / "logs", env={"OMP_NUM_THREADS": "1"})
    assert "Parameters: total 23,528,522, trainable 23,528,522, frozen 0" in result.stdout  # 10 classes
    (metrics_file,) = (tmp_path / "logs").rglob("metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["status"] == "ok" and metrics["params"]["frozen"] == 0


def test_pretrained_on_a_baseline_model_is_a_config_error(config_factory):
    with pytest.raises(ConfigError, match="model=cnn has no pretrained weights"):
        check_required(config_factory("model=cnn", "pretrained=true"))
    check_required(config_factory("model=resnet18", "pretrained=true"))  # consumed: no error


def test_generic_config_builds_any_model_by_name():
    cfg = compose_config("model=torchvision", "model.name=regnet_x_400mf", "model.finetune=frozen")
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    assert net["name"] == "regnet_x_400mf" and net["finetune"] == "frozen" and net["pretrained"] is False


# --- fine-tuning strategies ----------------------------------------------------------------
def _trainer(max_epochs: int, callbacks=()) -> L.Trainer:
    return L.Trainer(
        max_epochs=max_epochs,
        limit_train_batches=3,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
    )


def _backbone_state(net: TorchvisionNet) -> dict[str, torch.Tensor]:
    head = {f"{net.head_layer_name}.{key}" for key in net.head.state_dict()}
    return {k: v.clone() for k, v in net.model.state_dict().items() if k not in head}


@pytest.mark.e2e
def test_frozen_keeps_backbone_and_batchnorm_statistics_and_trains_the_head():
    L.seed_everything(0)
    model, data = _digits_classifier({"name": "resnet18", "finetune": "frozen", "input_size": [32, 32]})
    backbone, head = _backbone_state(model.net), model.net.head.weight.clone()
    assert any("running_mean" in key for key in backbone)
    _trainer(1).fit(model, datamodule=data)
    after = _backbone_state(model.net)
    assert all(torch.equal(backbone[key], after[key]) for key in backbone)
    assert not torch.equal(head, model.net.head.weight)


class _BackboneSnapshots(L.Callback):
    def __init__(self):
        self.states, self.groups = [], []

    def on_train_epoch_end(self, trainer, pl_module):
        self.states.append(_backbone_state(pl_module.net))
        self.groups.append([(g.get("name"), g["lr"]) for g in trainer.optimizers[0].param_groups])


@pytest.mark.e2e
def test_gradual_unfreezes_the_backbone_at_the_configured_epoch_and_lr():
    L.seed_everything(0)
    net = {"name": "resnet18", "finetune": "gradual", "unfreeze_at_epoch": 2, "backbone_lr_mult": 0.1}
    model, data = _digits_classifier({**net, "input_size": [32, 32]}, optimizer_lr=0.05)
    start, snapshots = _backbone_state(model.net), _BackboneSnapshots()
    _trainer(3, [snapshots]).fit(model, datamodule=data)

    def unchanged(state):
        return all(torch.equal(start[key], state[key]) for key in start)

    assert [unchanged(state) for state in snapshots.states] == [True, True, False]
    assert [dict(groups) for groups in snapshots.groups] == [
        {"head": 0.05},
        {"head": 0.05},
        {"head": 0.05, "backbone": pytest.approx(0.005)},
    ]
    assert all(p.requires_grad for p in model.parameters())


def test_backbone_lr_mult_gives_the_backbone_its_own_learning_rate():
    model, _ = _digits_classifier({"name": "resnet18", "backbone_lr_mult": 0.1}, optimizer_lr=0.02)
    model.trainer = L.Trainer(max_epochs=1, logger=False)
    optimizer = model.configure_optimizers()
    rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert rates == {"backbone": pytest.approx(0.002), "head": 0.02}
    in_groups = sum(p.numel() for group in optimizer.param_groups for p in group["params"])
    assert in_groups == sum(p.numel() for p in model.parameters())


def test_listing_shows_each_weights_imagenet_metrics(capsys):
    from imgcls.models.list import main

    assert main(["alexnet", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "AlexNet_Weights.IMAGENET1K_V1,True,56.522,79.066,61.1,0.714,224,alexnet-owt-7be5be79.pth,False" in out


# --- experiment recipes --------------------------------------------------------------------
RECIPES = {
    "cifar10_mlp": "cifar10",
    "cifar10_cnn": "cifar10",
    "cifar10_cnn_bn": "cifar10",
    "cifar10_vgg16_frozen": "cifar10",
    "retinopathy_resnet18": "retinopathy",
    "retinopathy_resnet50": "retinopathy",
    "retinopathy_resnet18_pretrained": "retinopathy",
    "retinopathy_resnet50_pretrained": "retinopathy",
    "casia_logreg": "casia",
    "casia_cnn": "casia",
    "casia_transfer": "casia",
}


@pytest.mark.e2e
@pytest.mark.parametrize(("recipe", "data"), RECIPES.items())
def test_recipe_composes_with_the_seed_setup(recipe, data, tmp_path):
    if not (CONF_DIR / "data" / f"{data}.yaml").exists():
        pytest.skip(f"conf/data/{data}.yaml is not in this checkout (built on another branch)")
    cfg = compose_config(f"experiment={recipe}", output_dir=tmp_path)
    assert cfg.task_name == recipe and (CONF_DIR / "experiment" / f"{recipe}.yaml").exists()
    model = OmegaConf.to_container(cfg.model, resolve=True)
    OmegaConf.to_container(cfg.optimizer, resolve=True)
    if "transfer" in recipe or "vgg16" in recipe or "pretrained" in recipe:
        assert model["net"]["pretrained"] is True
    if recipe == "casia_transfer":
        assert model["net"]["finetune"] == "gradual" and model["net"]["backbone_lr_mult"] == 0.01
    if recipe.startswith("retinopathy"):
        assert cfg.optimizer.lr == 2.5e-4 and cfg.data.batch_size == 4


@pytest.mark.slow
def test_casia_transfer_recipe_runs_end_to_end_with_real_weights(mobilenet_torch_home, tmp_path):
    """Seed 004's recipe on CASIA-shaped grayscale characters: real MobileNetV2 weights,
    widened to 3 channels, resized on the device, unfrozen at epoch 1 (of 2)."""
    from image_fixtures import make_casia

    root = make_casia(tmp_path / "CASIA", train_per_class=8, test_per_class=3, seed=0)
    result = run_train_py(
        "experiment=casia_transfer",
        f"data.root={root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "model.input_size=[64,48]",
        "model.unfreeze_at_epoch=1",
        "trainer.max_epochs=2",
        "logger=csv",
        log_dir=tmp_path / "logs",
        env={"OMP_NUM_THREADS": "1", "TORCH_HOME": str(mobilenet_torch_home)},
    )
    assert "Epoch 2: backbone unfrozen (after 1 epoch of the head alone), learning rate 1e-05" in result.stdout
    (path,) = (tmp_path / "logs").rglob("metrics.json")
    metrics = json.loads(path.read_text())
    assert metrics["status"] == "ok" and metrics["epochs_trained"] == 2 and metrics["params"]["frozen"] == 0


def test_classifier_from_checkpoint_needs_no_weights_file(torch_home, tmp_path):
    """Evaluate/predict on a machine without the pretrained file: the checkpoint is enough."""
    import lightning as L

    from imgcls.models.classifier import ImageClassifier

    cached = weights_file(resolve_weights("resnet18", pretrained=True))
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), cached)
    net = {
        "_target_": "imgcls.models.torchvision_net.TorchvisionNet",
        "_partial_": True,
        "name": "resnet18",
        "pretrained": True,
    }
    model = ImageClassifier(
        net=net,
        num_classes=3,
        class_names=["a", "b", "c"],
        input_shape=[3, 32, 32],
        mean=[0.5] * 3,
        std=[0.2] * 3,
        optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
    ).eval()
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    cached.unlink()

    rebuilt = ImageClassifier.from_checkpoint(tmp_path / "model.ckpt").eval()
    images = torch.rand(2, 3, 32, 32)
    assert torch.equal(rebuilt(images), model(images))
