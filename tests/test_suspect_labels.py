"""Suspect labels: a trained model's strongest contradictions of the given labels."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import compose_config
from flipped_digits import FLIPPED

from imgcls.metrics import Predictions
from imgcls.reports.suspect_labels import suspect_table, suspects


def test_suspects_are_confident_contradictions_by_loss():
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.45, 0.55], [0.2, 0.8]])
    labels = np.array([1, 1, 0, 1])  # rows 0-2 contradicted; row 2 only with p = 0.55
    split = Predictions("train", probabilities, labels, ["a", "b"], losses=-np.log(probabilities[range(4), labels]))
    table = suspect_table(suspects([split], min_confidence=0.58))
    assert list(table["index"]) == [0, 1]
    assert list(table["given_label"]) == ["b", "b"] and list(table["predicted_label"]) == ["a", "a"]
    assert table["probability"].tolist() == [0.9, 0.6]


@pytest.mark.slow  # a training run of its own (about 20 s); `make test-slow`
def test_flipped_labels_of_the_digits_top_the_suspect_list(tmp_path):
    from imgcls.training.run import train

    run_dir = tmp_path / "run"
    cfg = compose_config(
        "model=cnn",  # the shared digits run's model: 98% right, so only the flipped are far off
        "trainer.max_epochs=5",
        "optimizer.lr=3e-3",
        "logger=csv",
        "data._target_=flipped_digits.FlippedDigitsDataModule",
        output_dir=run_dir,
    )
    train(cfg)
    table = pd.read_csv(run_dir / "report" / "suspect_labels.csv")
    # The flipped training images come first (a validation digit the model also disputes,
    # given 1 but much like a 5, may sit among them).
    top = table[table["split"] == "train"].head(len(FLIPPED))
    assert sorted(top["index"]) == sorted(FLIPPED)
    assert top.index.max() < len(FLIPPED) + 2
    # The model names the flipped images' real digits: what to relabel them to (one real 5
    # of them it takes for a 9).
    assert ((top["given_label"] + 5) % 10 == top["predicted_label"]).sum() >= len(FLIPPED) - 1
    assert (np.diff(table["loss"]) <= 0).all()
    report = (run_dir / "report" / "report.md").read_text()
    assert "suspect_labels.png" in set(re.findall(r"\]\(([^)]+)\)", report))
    assert (run_dir / "report" / "suspect_labels.png").stat().st_size > 0
