"""Comparing weights and models: real MobileNetV2 weights, a state dict, a trained checkpoint."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from digits_run import best_checkpoint, trained_digits_run
from PIL import Image

from imgcls.models.list import weights_table
from imgcls.reports.model_comparison import compare_models, count_macs, measure_speed, write_comparison


@pytest.fixture
def image_folder(tmp_path, tmp_path_factory):
    """ImageNet-named folders with real photos, and digit folders with real test digits."""
    from skimage import data

    from imgcls.data.digits import DigitsDataModule

    root = tmp_path / "images"
    for name, photo in (("Egyptian cat", data.chelsea()), ("espresso", data.coffee())):
        (root / name).mkdir(parents=True)
        Image.fromarray(photo).save(root / name / f"{name}.jpg")
    datamodule = DigitsDataModule()
    datamodule.setup("test")
    test = datamodule.test_sets["test"]
    for index in range(60):
        folder = root / datamodule.class_names[int(test.labels[index])]
        folder.mkdir(exist_ok=True)
        Image.fromarray(test.images[index, 0].numpy()).save(folder / f"{index:03d}.png")
    return root


@pytest.mark.e2e
def test_compare_two_mobilenet_weights_and_a_checkpoint(
    mobilenet_torch_home, image_folder, tmp_path_factory, tmp_path
):
    from torchvision.models import mobilenet_v2

    # The same architecture from a state dict saved under another name in TORCH_HOME.
    copy = mobilenet_torch_home / "hub" / "checkpoints" / "my_mobilenet_copy.pth"
    torch.save(mobilenet_v2(weights="IMAGENET1K_V1").state_dict(), copy)
    ckpt = best_checkpoint(trained_digits_run(tmp_path_factory.getbasetemp() / "digits_run"))
    specs = ["mobilenet_v2:IMAGENET1K_V1", f"mobilenet_v2:{copy}", str(ckpt), "mobilenet_v2:NO_SUCH_WEIGHTS"]

    table = compare_models(specs, image_folder, batch_size=16, warmup=1, repeats=2, speed_batch_size=2)
    paths = write_comparison(table, tmp_path / "out", image_folder)

    real, saved, trained, bad = (row for _, row in table.iterrows())
    assert saved["model"] == "mobilenet_v2:my_mobilenet_copy.pth"
    for row in (real, saved):
        assert row["acc1"] == 1.0 and row["acc5"] == 1.0 and row["images"] == 2 and row["skipped"] == 60
        assert row["params_m"] == pytest.approx(3.505, abs=0.01)
        # Multiply-adds, the unit of torchvision's metadata (python -m imgcls.models.list).
        listed = weights_table("mobilenet_v2").query("weights == 'MobileNet_V2_Weights.IMAGENET1K_V1'")
        assert row["gmacs"] == pytest.approx(float(listed["gmacs"].iloc[0]), rel=0.03)  # 0.30 at 224x224
        assert row["file_mb"] == pytest.approx(14.2, abs=0.3)
        assert row["latency_ms"] > 0 and row["throughput_ips"] > 0
    assert trained["images"] == 60 and trained["skipped"] == 2 and trained["acc1"] > 0.8
    assert trained["acc5"] >= trained["acc1"] and trained["input"] == "1x8x8"
    assert 0 < trained["gmacs"] < 1e-3 and trained["params_m"] < 0.1
    assert "NO_SUCH_WEIGHTS" in bad["error"] and pd.isna(bad["acc1"])
    assert table["error"][:3].eq("").all()

    for path in paths.values():
        assert path.stat().st_size > 0
    markdown = paths["markdown"].read_text()
    assert "![comparison](comparison.png)" in markdown and "mobilenet_v2:IMAGENET1K_V1" in markdown


def test_multiply_adds_are_counted_not_copied():
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    assert count_macs(linear, (3, 2, 2)) == 12 * 5


class _SlowFirstCallPerShape(torch.nn.Module):
    """5 ms a call, whatever the batch, but 300 ms the first time it sees a shape (cold)."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def forward(self, images):
        import time

        time.sleep(0.005 if images.shape in self.seen else 0.3)
        self.seen.add(images.shape)
        return images


def test_batched_throughput_is_timed_warm_so_it_cannot_read_below_batch_1():
    latency_ms, throughput = measure_speed(_SlowFirstCallPerShape(), (1, 2, 2), batch_size=8, warmup=0, repeats=1)
    assert latency_ms < 100 and throughput >= 1000 / latency_ms


def test_a_missing_weights_file_is_reported_in_its_row(torch_home, monkeypatch, tmp_path):
    import socket

    from imgcls.models.weights import resolve_weights, weights_file

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    (tmp_path / "images" / "tabby").mkdir(parents=True)
    Image.new("RGB", (40, 40)).save(tmp_path / "images" / "tabby" / "a.png")

    table = compare_models(["resnet18:IMAGENET1K_V1"], tmp_path / "images")
    error = table["error"].iloc[0]
    path = weights_file(resolve_weights("resnet18", "IMAGENET1K_V1"))
    assert error.startswith("PretrainedWeightsMissing: ")
    assert f"Put the file {path.name} into {path.parent}" in error and pd.isna(table["acc1"].iloc[0])
