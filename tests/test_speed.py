"""The speed work changes no result: cheap train metrics equal sklearn's, the one-gather
augmentation is a real random crop/flip, and channels_last / bf16 / compile train to the
same numbers as the plain fp32 run on the same seed."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import compose_config
from sklearn import metrics as skm

from imgcls.data.augment import random_crop_flip
from imgcls.metrics import EpochMetrics
from imgcls.models.classifier import ImageClassifier
from imgcls.training.run import train


def test_epoch_metrics_equal_sklearn():
    torch.manual_seed(0)
    metrics = EpochMetrics(num_classes=12, prefix="train/")
    logits, targets = torch.randn(300, 12), torch.randint(0, 11, (300,))  # class 11 never a target
    logits[::3, 5] += 3  # some predictions of class 5 right, most wrong
    for chunk in range(0, 300, 64):  # steps of unequal size
        metrics.update(logits[chunk : chunk + 64], targets[chunk : chunk + 64])
    result = {key: value.item() for key, value in metrics.compute().items()}

    preds = logits.argmax(1).numpy()
    y = targets.numpy()
    assert result["train/acc"] == pytest.approx(skm.accuracy_score(y, preds), abs=1e-6)
    for name, score in {
        "precision": skm.precision_score,
        "recall": skm.recall_score,
        "f1": skm.f1_score,
    }.items():
        expected = score(y, preds, average="macro", zero_division=0)
        assert result[f"train/{name}"] == pytest.approx(expected, abs=1e-6), name
    top5 = skm.top_k_accuracy_score(y, logits.numpy(), k=5, labels=list(range(12)))
    assert result["train/top5"] == pytest.approx(top5, abs=1e-6)

    metrics.reset()
    metrics.update(logits[:10], targets[:10])
    assert metrics.compute()["train/acc"].item() == pytest.approx(skm.accuracy_score(y[:10], preds[:10]))


def test_random_crop_flip_is_a_crop_of_the_padded_image_and_flips_half():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (400, 3, 6, 7), dtype=torch.uint8)
    padded = F.pad(images, (2, 2, 2, 2))
    out = random_crop_flip(images, padding=2, hflip=True)
    seen_offsets, flips = set(), 0
    for i in range(len(images)):
        matches = [
            (dy, dx, flip)
            for dy in range(5)
            for dx in range(5)
            for flip in (False, True)
            if torch.equal(
                out[i], (lambda crop: crop.flip(-1) if flip else crop)(padded[i, :, dy : dy + 6, dx : dx + 7])
            )
        ]
        assert matches, f"sample {i} is not a (flipped) crop of its padded image"
        seen_offsets.add(matches[0][:2])
        flips += matches[0][2]
    assert len(seen_offsets) == 25  # every offset of RandomCrop(padding=2) occurs
    assert 140 < flips < 260  # p = 0.5

    vflipped = random_crop_flip(images, vflip=True)
    assert all(torch.equal(v, x) or torch.equal(v, x.flip(-2)) for v, x in zip(vflipped, images, strict=True))


def test_channels_last_auto_is_on_for_conv_nets_only():
    common = dict(
        num_classes=3, class_names=list("abc"), input_shape=[3, 16, 16], mean=[0.5] * 3, std=[0.2] * 3
    )
    common["optimizer"] = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}
    cnn = {"_target_": "imgcls.models.nets.SmallCNN", "_partial_": True}
    logreg = {"_target_": "imgcls.models.nets.LogisticRegression", "_partial_": True}
    assert ImageClassifier(net=cnn, channels_last="auto", **common).channels_last
    assert not ImageClassifier(net=logreg, channels_last="auto", **common).channels_last
    model = ImageClassifier(net=cnn, channels_last=True, **common)
    assert model.net.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    plain = ImageClassifier(net=cnn, channels_last=False, **common)
    plain.load_state_dict(model.state_dict())  # a checkpoint does not depend on the layout
    images = torch.rand(4, 3, 16, 16)
    assert torch.allclose(plain(images), model(images), atol=1e-5)


def _run(run_dir: Path, *overrides, epochs: int = 3) -> tuple[dict, pd.DataFrame]:
    """A short real digits run (same seed every time); its metrics.json and CSV log."""
    cfg = compose_config(
        "model=cnn",
        f"trainer.max_epochs={epochs}",
        "optimizer.lr=3e-3",
        "logger=csv",
        "report=false",  # these tests compare metrics
        *overrides,
        output_dir=run_dir,
    )
    train(cfg)
    return json.loads((run_dir / "metrics.json").read_text()), pd.read_csv(run_dir / "csv" / "metrics.csv")


def _assert_close(a: dict, b: dict, loss_tol: float, acc_tol: float, splits=("best", "test")) -> None:
    for split in splits:
        for key, value in a[split].items():
            tol = loss_tol if key.endswith("loss") else acc_tol
            assert b[split][key] == pytest.approx(value, abs=tol), (split, key)


@pytest.mark.e2e
def test_channels_last_trains_to_the_same_numbers(tmp_path):
    plain, history = _run(tmp_path / "plain", "channels_last=false")
    fast, _ = _run(tmp_path / "channels_last", "channels_last=true")
    assert plain["test"]["test/acc"] > 0.8  # it learned, so the comparison means something
    _assert_close(plain, fast, loss_tol=2e-3, acc_tol=0.011)
    # Training metrics and losses are still logged, once per epoch and every log_every_n_steps.
    logged = set(history.columns)
    assert {"train/acc", "train/top5", "train/f1", "train/loss_epoch", "train/loss_step"} <= logged
    assert history["train/acc"].dropna().size == 3


@pytest.mark.slow  # 8 s; channels_last keeps the precision plumbing in the default suite
def test_bf16_mixed_precision_stays_close_to_fp32(tmp_path):
    # bf16 rounds differently, so runs drift apart mid-training (and may pick another best
    # epoch): compare the trained models on the test set.
    plain, _ = _run(tmp_path / "fp32", "trainer.precision=32-true", epochs=8)
    bf16, _ = _run(tmp_path / "bf16", "trainer.precision=bf16-mixed", epochs=8)
    assert plain["test"]["test/acc"] > 0.9
    _assert_close(plain, bf16, loss_tol=0.05, acc_tol=0.03, splits=("test",))


@pytest.mark.slow  # 13 s of compiling; compile is opt-in
def test_compile_true_trains_an_epoch_of_the_demo_net(tmp_path):
    """compile=true compiles the net's forward only: metric updates and logging stay eager
    (tracing them failed inside torchmetrics)."""
    cfg = compose_config("experiment=digits_cnn", "data=digits", "compile=true", "trainer.max_epochs=1",
                         "report=false", "logger=none", output_dir=tmp_path)
    train(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "ok" and record["resolved"]["compile"] is True
    assert record["test"]["test/acc"] > 0.3  # one epoch, ten classes: it learned something


@pytest.mark.slow  # torch.compile takes 20-60 s to compile on a CPU
def test_compile_trains_to_the_same_numbers(tmp_path):
    plain, _ = _run(tmp_path / "plain", "compile=false")
    compiled, _ = _run(tmp_path / "compiled", "compile=true")
    _assert_close(plain, compiled, loss_tol=2e-3, acc_tol=0.011)


def test_precision_auto_is_bf16_on_gpus_with_bf16_only(monkeypatch):
    from imgcls.training.precision import resolve_precision

    def resolved(*overrides):
        cfg = compose_config(*overrides)
        return resolve_precision(cfg), cfg.trainer.precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolved() == ("32-true", "32-true")  # no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolved()[0] == "bf16-mixed"
    assert resolved("trainer=gpu")[0] == "bf16-mixed"
    assert resolved("trainer=cpu")[0] == "32-true"  # a GPU machine told to train on its CPU
    assert resolved("trainer.precision=16-mixed")[0] == "16-mixed"  # a choice is kept
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert resolved()[0] == "32-true"  # pre-Ampere GPUs would emulate bf16
