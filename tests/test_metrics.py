"""The logged metrics equal sklearn.metrics on the same predictions."""

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from imgcls.metrics import classification_metrics


@pytest.fixture(scope="module")
def digit_predictions():
    """Real, imperfect predictions: a weak logistic regression on the real digits."""
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    model = LogisticRegression(max_iter=15).fit(x[:300], y[:300])
    return model.predict_proba(x[300:]), y[300:]



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



def test_no_top5_for_five_classes_or_fewer():
    assert "top5" not in classification_metrics(5, prefix="").keys()
    assert "top5" in classification_metrics(6, prefix="").keys()


def _in_class_order(probabilities, targets):
    order = np.argsort(targets, kind="stable")
    return probabilities[order], targets[order]


@pytest.mark.parametrize("ordering", ["shuffled", "class_sorted"])
@pytest.mark.parametrize("batch_size", [16, 64])
def test_batched_metrics_equal_sklearn_in_any_order(digit_predictions, ordering, batch_size):
    """Image folders and CSV files list their samples class by class: a first batch of one
    class once made torchmetrics merge top-5, F1 and accuracy into one number."""
    probabilities, targets = digit_predictions
    if ordering == "class_sorted":
        probabilities, targets = _in_class_order(probabilities, targets)
    collection = classification_metrics(10, prefix="val/")
    for start in range(0, len(targets), batch_size):
        collection.update(
            torch.tensor(probabilities[start : start + batch_size]), torch.tensor(targets[start : start + batch_size])
        )
    got = {key: value.item() for key, value in collection.compute().items()}
    predicted = probabilities.argmax(1)
    expected = {
        "val/acc": skm.accuracy_score(targets, predicted),
        "val/top5": skm.top_k_accuracy_score(targets, probabilities, k=5),
        "val/f1": skm.f1_score(targets, predicted, average="macro", zero_division=0),
        "val/precision": skm.precision_score(targets, predicted, average="macro", zero_division=0),
        "val/recall": skm.recall_score(targets, predicted, average="macro", zero_division=0),
    }
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    assert got["val/top5"] > got["val/acc"]  # they differ here, so a merge would show


@pytest.mark.parametrize("ordering", ["shuffled", "class_sorted"])
def test_split_metrics_equal_sklearn_and_top_k_is_at_least_top_1(digit_predictions, ordering):
    from imgcls.metrics import Predictions, split_metrics

    probabilities, targets = digit_predictions
    if ordering == "class_sorted":
        probabilities, targets = _in_class_order(probabilities, targets)
    metrics = split_metrics(Predictions("test", probabilities, targets, [str(i) for i in range(10)]))
    predicted = probabilities.argmax(1)
    assert metrics["acc"] == skm.accuracy_score(targets, predicted)
    assert metrics["top5"] == skm.top_k_accuracy_score(targets, probabilities, k=5)
    assert metrics["f1"] == skm.f1_score(targets, predicted, average="macro", zero_division=0)
    assert metrics["top5"] > metrics["acc"]


def test_top_5_counts_a_hit_among_the_five_most_likely_for_many_classes():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(55), size=300)
    targets = np.sort(rng.integers(0, 55, 300))  # class-sorted, as a CASIA test folder
    collection = classification_metrics(55, prefix="")
    for start in range(0, 300, 50):
        collection.update(torch.tensor(probabilities[start : start + 50]), torch.tensor(targets[start : start + 50]))
    got = collection.compute()
    assert got["top5"].item() == pytest.approx(
        skm.top_k_accuracy_score(targets, probabilities, k=5, labels=range(55)), abs=1e-6
    )
    assert got["top5"].item() > got["acc"].item()


def test_evaluation_order_is_a_fixed_shuffle_that_processes_share_without_overlap():
    from imgcls.data.evaluation_order import EvaluationOrder

    single = list(EvaluationOrder(1000))
    assert sorted(single) == list(range(1000)) and single != list(range(1000))
    assert single == list(EvaluationOrder(1000))  # the same in every run
    shares = [list(EvaluationOrder(1000, replicas=3, rank=r)) for r in range(3)]
    assert sorted(sum(shares, [])) == list(range(1000))  # each sample once, no padding
    # The first 100 of a class-sorted split (10 classes of 100) cover every class.
    labels = np.repeat(np.arange(10), 100)
    assert len(set(labels[single[:100]])) == 10
