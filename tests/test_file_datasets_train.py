"""``python train.py data=X model=cnn`` end to end on each file dataset's fixture."""

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_train_py
from image_fixtures import (
    CHARACTERS,
    make_casia,
    make_character_folders,
    make_class_folders,
    make_retinopathy,
)

# End-to-end runs: the default suite runs them, `make test-unit` skips them.
pytestmark = pytest.mark.e2e


def train_cnn_on(data: str, root, tmp_path, *overrides: str):
    """``train.py data=<data> model=cnn`` on a fixture; returns (metrics.json, the process)."""
    result = run_train_py(
        f"data={data}",
        "model=cnn",
        f"data.root={root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        *overrides,
        log_dir=tmp_path / "logs",
        # One thread per run: on a shared 2-core machine under load, 2 OpenMP threads per
        # process made each step of a tiny CNN about 10x slower.
        env={"OMP_NUM_THREADS": "1"},
    )
    (path,) = (tmp_path / "logs").glob("train/runs/*/metrics.json")
    return json.loads(path.read_text()), result


def test_casia_learns_and_reports_its_extra_test_set(tmp_path):
    root = make_casia(tmp_path / "CASIA", train_per_class=20, test_per_class=6, seed=0)
    make_character_folders(tmp_path / "mandarin", CHARACTERS, 4, seed=3)
    metrics, result = train_cnn_on(
        "casia",
        root,
        tmp_path,
        f"data.extra_test={{mandarin:'{tmp_path / 'mandarin'}'}}",
        "data.image_size=[40,30]",  # half of 80x60 each way: the same learning, 4x less work
        "data.batch_size=16",
        "trainer.max_epochs=6",
        "optimizer.lr=3e-3",
        "seed=1",
    )
    chance = 1 / len(CHARACTERS)
    assert metrics["status"] == "ok"
    assert metrics["test"]["test/acc"] > 3 * chance  # 6 characters: chance is 1/6
    assert metrics["test"]["test_mandarin/acc"] > 2 * chance
    assert "missing from font" not in result.stderr  # Chinese names in the confusion matrices


def test_folder_trains_end_to_end(tmp_path):
    root = make_class_folders(tmp_path / "images", per_class=12)
    metrics, _ = train_cnn_on(
        "folder", root, tmp_path, "data.image_size=[32,32]", "trainer.max_epochs=1", "logger=csv"
    )
    assert metrics["status"] == "ok" and "test/acc" in metrics["test"]
    # Every test image's prediction, named by its file: the folder it lies in is its label.
    table = pd.read_csv(Path(metrics["report"]).parent / "test" / "predictions.csv")
    assert len(table) == metrics["test_samples"]["test"]
    paths = [Path(path) for path in table["path"]]
    assert all(path.is_file() and root in path.parents for path in paths)
    assert [path.parent.name for path in paths] == list(table["true_label"])
    assert len(set(paths)) == len(paths)
    assert (table["true_label"] == table["predicted_label"]).mean() == pytest.approx(metrics["test"]["test/acc"])


def test_retinopathy_trains_end_to_end_with_imbalance_options_and_reports_kappa(tmp_path):
    grades = [0] * 14 + [1] * 4 + [2] * 6 + [3] * 3 + [4] * 3
    make_retinopathy(tmp_path / "retina", grades, [0, 1, 2, 3, 4, 0], header=False, size=32)
    metrics, _ = train_cnn_on(
        "retinopathy",
        tmp_path / "retina",
        tmp_path,
        "data.image_size=[32,32]",
        "data.sampler=weighted",
        "data.val_fraction=0.2",
        "loss.class_weights=balanced",
        "trainer.max_epochs=1",
        "logger=csv",
    )
    assert metrics["status"] == "ok"
    assert {"test/acc", "test/kappa"} <= set(metrics["test"])
    assert list((tmp_path / "cache").glob("*.npy"))  # decoded into the configured cache
