"""Test-time augmentation averages a model's softmax over flips and crops (inference/tta.py)."""

import json

import pytest
import torch
from torch import nn

from imgcls.config import ConfigError
from imgcls.inference.tta import MODES, averaged_probabilities, averaging_views, check_mode, views


def _classifier():
    from imgcls.models.classifier import ImageClassifier

    return ImageClassifier(
        net={"_target_": "imgcls.models.nets.LogisticRegression", "_partial_": True},
        num_classes=5, class_names=list("abcde"), input_shape=[3, 16, 16], mean=[0.5] * 3, std=[0.2] * 3,
        optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
    ).eval()  # fmt: skip


class _MirrorSymmetric(nn.Module):
    """A net that gives the same logits for an image and its mirror."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, images):
        return self.net(images) + self.net(images.flip(-1))


@torch.no_grad()
def test_flip_tta_of_a_flip_invariant_model_is_its_plain_prediction():
    torch.manual_seed(0)
    model = _classifier()
    model.net = _MirrorSymmetric(model.net)
    images = torch.rand(6, 3, 16, 16)
    plain = model(images).softmax(1)
    with averaging_views(model, "flip"):
        assert torch.allclose(model(images).softmax(1), plain, atol=1e-6)
    assert isinstance(model.net, _MirrorSymmetric)  # restored


@torch.no_grad()
def test_flip_tta_is_the_mean_of_the_two_softmaxes():
    torch.manual_seed(0)
    model = _classifier()
    images = torch.rand(6, 3, 16, 16)
    expected = (model(images).softmax(1) + model(images.flip(-1)).softmax(1)) / 2
    with averaging_views(model, "flip"):
        augmented = model(images).softmax(1)
    assert torch.allclose(augmented, expected, atol=1e-6)
    assert not torch.allclose(augmented, model(images).softmax(1), atol=1e-3)


@torch.no_grad()
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_of_a_constant_image_is_the_plain_prediction(mode):
    model = _classifier()
    images = torch.full((2, 3, 16, 16), 0.3)
    with averaging_views(model, mode):
        assert torch.allclose(
            model(images).softmax(1), model.net.net(model_input(model, images)).softmax(1), atol=1e-5
        )


def model_input(model, images):
    return (images - model.mean) / model.std


def test_views_are_shaped_like_the_batch():
    images = torch.rand(3, 3, 16, 20)
    counts = {"none": 1, "flip": 2, "five_crop": 5, "flip_five_crop": 10}
    for mode, count in counts.items():
        taken = views(images, mode)
        assert len(taken) == count and all(view.shape == images.shape for view in taken)
    # The five crops are the corners and the centre, each 87.5% of a side, resized back.
    corner = views(images, "five_crop")[0]
    assert torch.allclose(
        corner,
        torch.nn.functional.interpolate(
            images[..., :14, :18], size=(16, 20), mode="bilinear", antialias=True
        ),
        atol=1e-5,
    )
    assert torch.allclose(
        averaged_probabilities(lambda x: x.mean((2, 3)), images, "none"), images.mean((2, 3)).softmax(1)
    )


def test_an_unknown_mode_names_the_key():
    with pytest.raises(ConfigError, match="tta='mirror'"):
        check_mode("mirror")
    assert check_mode(None) == "none"


@pytest.mark.e2e
def test_evaluate_reports_tta_next_to_the_plain_figures(tmp_path_factory, tmp_path, capsys):
    from conftest import CONF_DIR
    from digits_run import best_checkpoint, trained_digits_run
    from hydra import compose, initialize_config_dir

    from imgcls.inference.evaluate import evaluate

    run_dir = trained_digits_run(tmp_path_factory.getbasetemp() / "digits_run")
    ckpt = best_checkpoint(run_dir)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"ckpt_path='{ckpt}'", f"output_dir={tmp_path}", "tta=flip"])
    report = evaluate(cfg).read_text()
    printed = capsys.readouterr().out
    assert "With test-time augmentation (tta=flip):" in printed and printed.count("| test set") == 2
    assert "tta=flip on test: acc" in report and "(plain " in report
    # The report's own figures stay the plain pass's: the run's report has the same numbers.
    ours = json.loads((tmp_path / "evaluation.json").read_text())
    runs = json.loads((run_dir / "report" / "evaluation.json").read_text())
    assert ours["test"] == pytest.approx(runs["test"], abs=1e-6)


@torch.no_grad()
def test_predict_averages_the_views_too():
    from imgcls.inference.loading import InferenceModel

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    model = InferenceModel("x", net, list("abcd"), lambda path: None, (3, 8, 8), None)
    images = torch.rand(5, 3, 8, 8)
    expected = (net(images).softmax(1) + net(images.flip(-1)).softmax(1)) / 2
    assert torch.allclose(model.probabilities(images, "flip"), expected, atol=1e-6)
    assert torch.allclose(model.probabilities(images), net(images).softmax(1))


def test_the_reports_tta_notes_keep_the_overlap_note(monkeypatch, tmp_path):
    """evaluate passes its TTA figures as notes; a data module's overlap note stays first."""
    from types import SimpleNamespace

    from imgcls.reports import report

    seen = {}
    monkeypatch.setattr(report, "write_report", lambda predictions, out_dir, **kwargs: seen.update(kwargs))
    model = SimpleNamespace(test_predictions={}, test_results={})
    datamodule = SimpleNamespace(overlaps=["a.png"], ordinal=False)
    report.write_evaluation_report(model, datamodule, tmp_path, notes=["tta=flip ..."])
    assert len(seen["notes"]) == 2 and "two splits" in seen["notes"][0] and seen["notes"][1] == "tta=flip ..."
