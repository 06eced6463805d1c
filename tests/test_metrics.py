"""The logged metrics equal sklearn.metrics on the same predictions."""

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from torchmetrics.classification import MulticlassConfusionMatrix

from imgcls.metrics import classification_metrics


@pytest.fixture(scope="module")
def digit_predictions():
    """Real, imperfect predictions: a weak logistic regression on the real digits."""
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    model = LogisticRegression(max_iter=15).fit(x[:300], y[:300])
    return model.predict_proba(x[300:]), y[300:]


def test_metrics_equal_sklearn(digit_predictions):
    probabilities, targets = digit_predictions
    predicted = probabilities.argmax(1)
    assert 0.6 < skm.accuracy_score(targets, predicted) < 0.99  # errors exist, so averages differ

    collection = classification_metrics(10, prefix="val/")
    collection.update(torch.tensor(probabilities), torch.tensor(targets))
    got = {key: value.item() for key, value in collection.compute().items()}

    expected = {
        "val/acc": skm.accuracy_score(targets, predicted),
        "val/top5": skm.top_k_accuracy_score(targets, probabilities, k=5),
        "val/precision": skm.precision_score(targets, predicted, average="macro", zero_division=0),
        "val/recall": skm.recall_score(targets, predicted, average="macro", zero_division=0),
        "val/f1": skm.f1_score(targets, predicted, average="macro", zero_division=0),
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


def test_macro_average_skips_a_class_absent_from_targets_and_predictions(digit_predictions):
    probabilities, targets = digit_predictions
    keep = targets != 9
    probabilities = probabilities[keep].copy()
    probabilities[:, 9] = 0  # class 9 is neither a target nor a prediction
    targets = targets[keep]
    predicted = probabilities.argmax(1)
    collection = classification_metrics(10, prefix="")
    collection.update(torch.tensor(probabilities), torch.tensor(targets))
    got = collection.compute()
    assert got["f1"].item() == pytest.approx(skm.f1_score(targets, predicted, average="macro"), abs=1e-6)
    assert got["precision"].item() == pytest.approx(
        skm.precision_score(targets, predicted, average="macro"), abs=1e-6
    )


def test_confusion_matrix_equals_sklearn(digit_predictions):
    probabilities, targets = digit_predictions
    matrix = MulticlassConfusionMatrix(10)(torch.tensor(probabilities), torch.tensor(targets))
    np.testing.assert_array_equal(
        matrix.numpy(), skm.confusion_matrix(targets, probabilities.argmax(1), labels=range(10))
    )


def test_no_top5_for_five_classes_or_fewer():
    assert "top5" not in classification_metrics(5, prefix="").keys()
    assert "top5" in classification_metrics(6, prefix="").keys()
