"""predict.py: top-k CSVs for real photos with real ImageNet weights, and for a trained checkpoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CONF_DIR
from digits_run import best_checkpoint, trained_digits_run
from hydra import compose, initialize_config_dir
from PIL import Image

from imgcls.inference.predict import run_predict

# ImageNet's domestic cats (indices 281-285).
CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


def predict_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("predict", overrides=list(overrides))


def test_pretrained_mobilenet_names_real_photos_and_reports_bad_files(mobilenet_torch_home, tmp_path):
    from skimage import data

    photos = tmp_path / "photos"
    (photos / "more").mkdir(parents=True)
    Image.fromarray(data.chelsea()).save(photos / "chelsea.jpg")
    Image.fromarray(data.coffee()).save(photos / "more" / "coffee.jpg")
    (photos / "notes.txt").write_text("not an image")
    (photos / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    output = tmp_path / "predictions.csv"

    run_predict(
        predict_config(
            "model_name=mobilenet_v2", "weights=IMAGENET1K_V1", f"input={photos}", f"output={output}"
        )
    )
    table = pd.read_csv(output).set_index("path")
    table["error"] = table["error"].fillna("")
    chelsea, coffee = table.loc[str(photos / "chelsea.jpg")], table.loc[str(photos / "more" / "coffee.jpg")]
    assert chelsea["label_1"] in CAT_CLASSES and chelsea["error"] == ""
    assert coffee["label_1"] == "espresso" and coffee["prob_1"] > 0.8
    assert [column for column in table.columns if column.startswith("label_")] == [
        f"label_{i}" for i in range(1, 6)
    ]
    probabilities = chelsea[[f"prob_{i}" for i in range(1, 6)]].to_numpy(dtype=float)
    assert np.all(np.diff(probabilities) <= 0) and probabilities.sum() <= 1 + 1e-6

    # Bad files get their own error and leave the others alone.
    assert "unsupported file type '.txt'" in table.loc[str(photos / "notes.txt"), "error"]
    assert "cannot decode" in table.loc[str(photos / "truncated.png"), "error"]
    assert pd.isna(table.loc[str(photos / "notes.txt"), "label_1"])


@pytest.mark.e2e
def test_checkpoint_predictions_from_a_csv_match_the_model(tmp_path_factory, tmp_path):
    from imgcls.data.digits import DigitsDataModule
    from imgcls.inference.loading import load_classifier

    ckpt = best_checkpoint(trained_digits_run(tmp_path_factory.getbasetemp() / "digits_run"))
    datamodule = DigitsDataModule()
    datamodule.setup("test")
    test = datamodule.test_sets["test"].subset(range(40))
    for index, image in enumerate(test.images.numpy()):
        Image.fromarray(image[0]).save(tmp_path / f"{index:03d}.png")
    pd.DataFrame({"path": [f"{i:03d}.png" for i in range(40)] + ["missing.png"]}).to_csv(
        tmp_path / "list.csv", index=False
    )
    output = tmp_path / "out.csv"

    run_predict(
        predict_config(
            f"ckpt_path='{ckpt}'", f"input={tmp_path / 'list.csv'}", f"output={output}", "topk=3", "cam=true"
        )
    )
    table = pd.read_csv(output, keep_default_na=False, dtype={"label_1": str})
    model = load_classifier(ckpt)
    with torch.no_grad():  # at the checkpoint's temperature (calibrated=true)
        expected = model.probabilities(model(test.images.float() / 255)).max(1)
    assert list(table["label_1"][:40]) == [datamodule.class_names[i] for i in expected.indices]
    np.testing.assert_allclose(table["prob_1"][:40].astype(float), expected.values.numpy(), atol=1e-5)
    assert "prob_4" not in table
    assert "missing.png" in table["error"].iloc[40]
    # cam=true: one Grad-CAM overlay per predicted image, beside the CSV, named in its `cam` column.
    overlays = sorted((tmp_path / "out_cam").iterdir())
    assert [p.name for p in overlays] == [f"{i:05d}_{i:03d}.png" for i in range(40)]
    assert list(table["cam"]) == [str(p) for p in overlays] + [""]


def test_predict_needs_exactly_one_model(tmp_path):
    from imgcls.config import ConfigError

    with pytest.raises(ConfigError, match="exactly one of ckpt_path"):
        run_predict(predict_config(f"input={tmp_path}"))


@pytest.mark.e2e
def test_file_names_that_are_not_utf8_are_predicted_and_written_escaped(tmp_path_factory, tmp_path):
    import os

    ckpt = best_checkpoint(trained_digits_run(tmp_path_factory.getbasetemp() / "digits_run"))
    folder = tmp_path / "unzipped"
    folder.mkdir()
    image = Image.fromarray(np.zeros((8, 8), dtype=np.uint8))
    image.save(folder / "ok.png")
    with open(os.path.join(os.fsencode(folder), b"\xe7\xff.png"), "wb") as file:  # GBK-ish bytes
        image.save(file, format="PNG")
    output = tmp_path / "out.csv"
    output.write_text("an older result\n")
    run_predict(predict_config(f"ckpt_path='{ckpt}'", f"input={folder}", f"output={output}"))
    table = pd.read_csv(output, keep_default_na=False)
    assert len(table) == 2 and (table["error"] == "").all()  # both predicted
    assert any("\\xe7\\xff.png" in path for path in table["path"])  # shown with escapes (display_name)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_labels_come_from_a_csv_column_or_class_folders(tmp_path):
    from imgcls.inference.predict import input_labels, list_inputs

    classes = ["cat", "dog"]
    pd.DataFrame({"path": ["a.png", "b.png"], "label": ["dog", "cat"]}).to_csv(tmp_path / "l.csv", index=False)
    files = list_inputs(tmp_path / "l.csv")
    assert input_labels(tmp_path / "l.csv", files, classes, "label") == [1, 0]
    assert input_labels(tmp_path / "l.csv", files, classes, "grade") is None  # no such column: unlabelled
    pd.DataFrame({"path": ["a.png", "b.png"], "label": ["dog", "cow"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"bad.csv, row 3: label='cow' is not one of the model's classes"):
        input_labels(tmp_path / "bad.csv", files, classes, "label")
    for name in ("cat/1.png", "dog/2.png"):
        (tmp_path / "photos" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "photos" / name).write_bytes(b"")
    photos = list_inputs(tmp_path / "photos")
    assert input_labels(tmp_path / "photos", photos, classes, "label") == [0, 1]
    assert input_labels(tmp_path / "photos", photos, ["cat", "bird"], "label") is None  # not class folders


def test_scores_are_evaluates_metrics_over_the_predicted_files():
    from imgcls.inference.predict import score_predictions

    probabilities = {0: np.array([0.9, 0.1]), 1: np.array([0.2, 0.8]), 3: np.array([0.6, 0.4])}  # 2 failed
    metrics, per_class = score_predictions(probabilities, [0, 1, 0, 1], ["cat", "dog"])
    assert metrics["acc"] == pytest.approx(2 / 3)
    assert set(per_class["class"]) == {"cat", "dog"} and per_class["support"].sum() == 3


@pytest.mark.e2e
def test_a_labelled_folder_is_predicted_as_a_table_and_scored(tmp_path_factory, tmp_path, capsys):
    from imgcls.data.digits import DigitsDataModule

    ckpt = best_checkpoint(trained_digits_run(tmp_path_factory.getbasetemp() / "digits_run"))
    datamodule = DigitsDataModule()
    datamodule.setup("test")
    test = datamodule.test_sets["test"].subset(range(30))
    for index, (image, label) in enumerate(zip(test.images.numpy(), test.labels.tolist(), strict=True)):
        (tmp_path / "digits" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0]).save(tmp_path / "digits" / str(label) / f"{index:03d}.png")
    output = tmp_path / "out.csv"
    run_predict(predict_config(f"ckpt_path='{ckpt}'", f"input={tmp_path / 'digits'}", f"output={output}"))
    printed = capsys.readouterr().out
    assert "Predictions (the first 10 of 30):" in printed and "| file " in printed
    assert "Scored against the input's labels (30 of 30 files)" in printed
    assert "| files " in printed and "| acc " in printed and "Per class:" in printed
