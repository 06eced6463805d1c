"""Grad-CAM through the grad-cam library: the layer it explains, where the heat lies, the report's
figure and predict's overlays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imgcls.config import ConfigError
from imgcls.metrics import Predictions
from imgcls.models.grad_cam import class_activation_maps, find_target_layer
from imgcls.models.nets import MLP, LogisticRegression, SmallCNN

SIDE = 16
# Class 1: a bright square somewhere in the top-left quadrant; class 0: the same square in the
# bottom-right one. Only the square's place tells the classes apart.
INFORMATIVE = np.zeros((SIDE, SIDE), dtype=bool)
INFORMATIVE[: SIDE // 2, : SIDE // 2] = True


def blob_images(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(count, 1, SIDE, SIDE, generator=generator) * 0.2
    labels = torch.randint(0, 2, (count,), generator=generator)
    for image, label in zip(images, labels, strict=True):
        low, high = (0, SIDE // 2 - 3) if label == 1 else (SIDE // 2, SIDE - 3)
        row, col = torch.randint(low, high + 1, (2,), generator=generator).tolist()
        image[0, row : row + 3, col : col + 3] = 1.0
    return images, labels


@pytest.fixture(scope="module")
def blob_net():
    """A small CNN trained (1 s) until it tells the classes apart; and a held-out batch."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    images, labels = blob_images(512, generator)
    net = SmallCNN((1, SIDE, SIDE), 2, channels=(8, 16), pool_sizes=(2, 2), hidden=16)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        batch = torch.randint(0, len(images), (64,), generator=generator)
        loss = torch.nn.functional.cross_entropy(net(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    held_out = blob_images(64, generator)
    with torch.no_grad():
        assert (net(held_out[0]).argmax(1) == held_out[1]).float().mean() > 0.95
    return net.eval(), held_out


def test_the_heat_lies_on_the_square_that_decides_the_class(blob_net):
    net, (images, labels) = blob_net
    name, layer = find_target_layer(net, images)
    assert name == "features"  # the last conv stage; its map is 4x4, before the flattening head
    heat = class_activation_maps(net, layer, images, labels)
    assert heat.shape == (len(images), SIDE, SIDE) and heat.min() >= 0 and heat.max() <= 1
    top_left = heat[labels.numpy() == 1]
    assert top_left[:, INFORMATIVE].mean() > 3 * top_left[:, ~INFORMATIVE].mean()
    bottom_right = heat[labels.numpy() == 0]
    assert bottom_right[:, ~INFORMATIVE].mean() > 2 * bottom_right[:, INFORMATIVE].mean()


def test_target_layer_is_the_last_spatial_conv_stage_of_any_net():
    import torchvision

    # 8x8 digits: the default pooling keeps a 4x4 map, so the whole conv stage is explained;
    # seed 004's fixed pooling leaves 1x1 there, so its last conv (a 2x2 map) is.
    digit = torch.rand(1, 1, 8, 8)
    assert find_target_layer(SmallCNN((1, 8, 8), 10), digit)[0] == "features"
    assert find_target_layer(SmallCNN((1, 8, 8), 10, pool_sizes=[2, 2, 4]), digit)[0] == "features.6"
    sample = torch.rand(1, 3, 64, 64)
    assert find_target_layer(torchvision.models.resnet18(num_classes=3), sample)[0] == "layer4"
    assert find_target_layer(torchvision.models.mobilenet_v2(num_classes=3), sample)[0] == "features"
    timm = pytest.importorskip("timm")
    assert find_target_layer(timm.create_model("resnet18", num_classes=3), sample)[0] == "layer4"
    # Flat nets have nothing to explain.
    assert find_target_layer(MLP((1, 8, 8), 10), torch.rand(1, 1, 8, 8)) is None
    assert find_target_layer(LogisticRegression((1, 8, 8), 10), torch.rand(1, 1, 8, 8)) is None


def test_a_named_or_declared_layer_overrides_the_choice():
    from imgcls.models.net_interface import ClassifierNet

    net = SmallCNN((1, 8, 8), 10)
    assert find_target_layer(net, torch.rand(1, 1, 8, 8), "features.3")[0] == "features.3"
    with pytest.raises(ConfigError, match=r"cam.target_layer='features.9'.*features.6"):
        find_target_layer(net, torch.rand(1, 1, 8, 8), "features.9")

    class Declares(ClassifierNet):
        def __init__(self):
            super().__init__()
            self.inner = SmallCNN((1, 8, 8), 10)

        def forward(self, x):
            return self.inner(x)

        def cam_target_layer(self):
            return self.inner.features[0]

    assert find_target_layer(Declares(), torch.rand(1, 1, 8, 8))[0] == "inner.features.0"


def _blob_predictions(net, images, labels) -> Predictions:
    with torch.no_grad():
        probabilities = net(images).softmax(1).double().numpy()
    probabilities[:3] = probabilities[:3, ::-1]  # three confident mistakes to show
    pixels = (images * 255).round().to(torch.uint8)
    return Predictions("test", probabilities, labels.numpy(), ["bottom-right", "top-left"], image_source=pixels)


def test_report_shows_grad_cam_of_mistakes_and_correct_ones(blob_net, tmp_path):
    from imgcls.reports.cam_gallery import NO_CONV_NOTE, cam_picks, cam_section
    from imgcls.reports.report import ReportWriter

    net, (images, labels) = blob_net
    predictions = _blob_predictions(net, images, labels)
    picks = cam_picks(predictions, mistakes=8, correct=2)
    assert list(picks[:3]) == sorted(range(3), key=lambda i: -predictions.confidence[i])  # only 3 mistakes
    assert len(picks) == 5 and predictions.correct[picks[3:]].all()

    # (The e2e report test sees the figure linked from a training run's report.md and in TensorBoard.)
    lines = cam_section(net, predictions, ReportWriter(tmp_path), mistakes=8, correct=2)
    assert "![grad-cam](test/grad_cam.png)" in lines and "Layer `features`" in "\n".join(lines)
    assert Image.open(tmp_path / "test" / "grad_cam.png").size[0] > 500

    lines = cam_section(MLP((1, SIDE, SIDE), 2), predictions, ReportWriter(tmp_path / "flat"), mistakes=4, correct=0)
    assert NO_CONV_NOTE in lines and not (tmp_path / "flat" / "test" / "grad_cam.png").exists()


def test_predict_writes_one_overlay_per_predicted_image(blob_net, tmp_path):
    from imgcls.inference.loading import InferenceModel
    from imgcls.inference.predict import ERROR_COLUMN, predict_files, write_cam_overlays

    net, (images, _) = blob_net
    files = []
    for index, image in enumerate(images[:5]):
        files.append(tmp_path / f"img{index}.png")
        Image.fromarray((image[0] * 255).round().byte().numpy()).save(files[-1])
    files.append(tmp_path / "missing.png")

    def preprocess(path):
        return torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255)[None]

    model = InferenceModel("blobs", net, ["bottom-right", "top-left"], preprocess, (1, SIDE, SIDE), None)
    table = predict_files(model, files)
    table = write_cam_overlays(model, files, table, tmp_path / "cams", batch_size=2)
    written = sorted((tmp_path / "cams").iterdir())
    assert [p.name for p in written] == [f"{i:05d}_img{i}.png" for i in range(5)]
    assert list(table["cam"]) == [str(p) for p in written] + [""] and table[ERROR_COLUMN].iloc[5]
    assert Image.open(written[0]).size == (128, 128)  # 16 px enlarged 8x, RGB heat over the image
    flat = InferenceModel("flat", MLP((1, SIDE, SIDE), 2), ["a", "b"], preprocess, (1, SIDE, SIDE), None)
    table = write_cam_overlays(flat, files, predict_files(flat, files), tmp_path / "none")
    assert not (tmp_path / "none").exists() and (table["cam"] == "").all()


def test_a_layer_name_the_model_lacks_fails_before_training(tmp_path):
    from conftest import compose_config

    from imgcls.training.run import train

    cfg = compose_config("model=cnn", "cam.target_layer=net.features.99", output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"cam.target_layer='net.features.99'.*net.features.6"):
        train(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_cam_counts_are_checked_before_anything_loads(tmp_path):
    from conftest import compose_config

    from imgcls.config import check_values

    with pytest.raises(ConfigError, match=r"cam.mistakes=-1 must be >= 0"):
        check_values(compose_config("cam.mistakes=-1", output_dir=tmp_path))
