"""TensorBoard's embedding projector: the files a training run writes load as TensorBoard reads them."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from digits_run import best_checkpoint, trained_digits_run
from google.protobuf import text_format
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig
from torch import nn

from imgcls.config import ConfigError, check_projector
from imgcls.models.classifier import ImageClassifier
from imgcls.models.embeddings import embedding_layer, embeddings
from imgcls.models.net_interface import ClassifierNet
from imgcls.reports.projector import METADATA_HEADER, metadata, projector_rows


def _projector(log_dir):
    config = text_format.Parse((log_dir / "projector_config.pbtxt").read_text(), ProjectorConfig())
    return {embedding.tensor_name.split(":")[0]: embedding for embedding in config.embeddings}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return trained_digits_run(tmp_path_factory.getbasetemp() / "digits_run")


@pytest.mark.e2e
def test_training_run_writes_a_projector_that_loads(run_dir):
    log_dir = run_dir / "tensorboard"
    embedding = _projector(log_dir)["projector/test"]
    evaluation = json.loads((run_dir / "report" / "evaluation.json").read_text())
    images = evaluation["test"]["samples"]
    assert images < 1000  # the whole digits test set fits under max_images

    tensors = np.loadtxt(log_dir / embedding.tensor_path, delimiter="\t", ndmin=2)
    classifier = embedding_layer(ImageClassifier.from_checkpoint(best_checkpoint(run_dir)).net)
    assert tensors.shape == (images, classifier.in_features)  # the input of the CNN's last Linear
    rows = (log_dir / embedding.metadata_path).read_text().splitlines()
    assert rows[0].split("\t") == METADATA_HEADER and len(rows) == images + 1
    first = dict(zip(METADATA_HEADER, rows[1].split("\t"), strict=True))
    assert first["correct"] == ("yes" if first["label"] == first["predicted"] else "no")
    # Mostly right: the features and labels belong together.
    assert sum(row.split("\t")[2] == "yes" for row in rows[1:]) / images == pytest.approx(evaluation["test"]["acc"])

    width, height = embedding.sprite.single_image_dim
    assert (width, height) == (8, 8)  # digits are smaller than thumbnail_size: kept as they are
    side = int(np.ceil(np.sqrt(images))) * width
    assert Image.open(log_dir / embedding.sprite.image_path).size == (side, side)
    report = (run_dir / "report" / "report.md").read_text()
    assert f"`tensorboard --logdir {log_dir}`, then the Projector tab" in report


@pytest.mark.e2e
def test_evaluate_limits_the_projector_to_max_images(run_dir, tmp_path):
    from imgcls.inference.evaluate import evaluate

    cfg = OmegaConf.load("conf/evaluate.yaml")
    cfg.pop("defaults")
    cfg.pop("hydra")
    cfg.merge_with(
        {
            "ckpt_path": str(best_checkpoint(run_dir)),
            "output_dir": str(tmp_path),
            "data": None,
            "cam": {"mistakes": 0},
            "projector": {"max_images": 10, "thumbnail_size": 4},
        }
    )
    evaluate(cfg)
    log_dir = tmp_path / "tensorboard"
    embedding = _projector(log_dir)["projector/test"]
    assert len((log_dir / embedding.tensor_path).read_text().splitlines()) == 10
    assert len((log_dir / embedding.metadata_path).read_text().splitlines()) == 11
    assert list(embedding.sprite.single_image_dim) == [4, 4]
    assert Image.open(log_dir / embedding.sprite.image_path).size == (16, 16)  # 4 x 4 thumbnails of 4 px
    assert "Projector tab" in (tmp_path / "report.md").read_text()


def test_projector_rows_sample_every_part_of_a_sorted_set():
    from imgcls.metrics import Predictions

    labels = np.repeat(np.arange(10), 100)  # a test set sorted by class
    predictions = Predictions("test", np.eye(10)[labels], labels, [str(k) for k in range(10)])
    rows = projector_rows(predictions, 50)
    assert len(rows) == 50 and np.all(np.diff(rows) > 0)
    assert len(set(labels[rows])) == 10
    assert len(projector_rows(predictions, 5000)) == 1000


def test_embeddings_are_the_input_of_the_last_linear_layer_or_the_declared_one():
    class Declared(ClassifierNet):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 3)
            self.extra = nn.Linear(3, 3)  # after the head in module order, yet not the classifier

        def forward(self, x):
            return self.head(x.flatten(1) * 2)

        def embedding_layer(self):
            return self.head

    class Model(nn.Module):  # what embeddings() reads of an ImageClassifier: .net and its forward
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

    plain = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    assert embedding_layer(plain) is plain[3]
    images = torch.rand(5, 1, 2, 2)
    assert torch.allclose(embeddings(Model(plain), images, batch_size=2), plain[:3](images))
    declared = Declared()
    assert embedding_layer(declared) is declared.head
    assert torch.allclose(embeddings(Model(declared), images), images.flatten(1) * 2)


def test_a_sprite_too_large_for_tensorboard_is_refused():
    check_projector(OmegaConf.create({"enabled": True, "max_images": 1000, "thumbnail_size": 64}))
    check_projector(OmegaConf.create({"enabled": False, "max_images": 10**6, "thumbnail_size": 64}))
    with pytest.raises(ConfigError, match="projector.max_images or projector.thumbnail_size"):
        check_projector(OmegaConf.create({"enabled": True, "max_images": 10000, "thumbnail_size": 128}))


def _projector_default_label(header: list[str], rows: list[list[str]]) -> str:
    """The column TensorBoard's Projector labels points by: the first whose values are not all
    numbers to JavaScript (projector_binary.js, updateMetadataUI), else the first."""
    js_number = re.compile(r"\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?Infinity)?\s*")
    for column, name in enumerate(header):
        if not all(js_number.fullmatch(row[column]) for row in rows):
            return name
    return header[0]


@pytest.mark.parametrize("class_names", [[str(k) for k in range(3)], ["cat", "dog", "7"]])
def test_the_projector_labels_points_by_their_true_class(class_names):
    from imgcls.metrics import Predictions

    labels = np.array([0, 1, 2, 2])
    predictions = Predictions("test", np.eye(3)[[0, 1, 1, 2]], labels, class_names)
    rows = metadata(predictions, np.arange(4))
    assert METADATA_HEADER[0] == "label"
    assert _projector_default_label(METADATA_HEADER, rows) == "label"
    shown = [row[0] for row in rows]
    assert all(class_names[k] in shown[i] for i, k in enumerate(labels))  # the class name, maybe as "class 2"
    assert rows[2][1] == shown[1] and rows[2][2] == "no"  # predicted reads as label does
