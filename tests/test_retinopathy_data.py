"""data=retinopathy: CSVs with and without header, the Kaggle table, row errors, imbalance, kappa."""

import numpy as np
import pytest
import torch
from image_fixtures import make_kaggle_table, make_retinopathy, set_up_data, write_column
from sklearn.metrics import cohen_kappa_score

from imgcls.data.label_csv import LabelCSVError
from imgcls.data.retinopathy import RetinopathyDataModule
from imgcls.metrics import classification_metrics

# Seed 003's imbalance, in miniature: mostly grade 0.
TRAIN_GRADES = [0] * 14 + [1] * 4 + [2] * 6 + [3] * 3 + [4] * 3
TEST_GRADES = [0, 1, 2, 3, 4, 0, 2]


@pytest.fixture(scope="module", params=[False, True], ids=["no_header", "header"])
def retina(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("retina")
    written = make_retinopathy(root, TRAIN_GRADES, TEST_GRADES, header=request.param, size=32)
    return root, written


@pytest.fixture
def retina_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("retina_copy")
    make_retinopathy(root, TRAIN_GRADES, TEST_GRADES, header=False, size=32)
    return root


def retina_data(root, tmp_path, **overrides):
    settings = {"root": root, "image_size": (32, 32), "val_fraction": 0.2}
    return set_up_data(RetinopathyDataModule, tmp_path, **{**settings, **overrides})


def test_every_row_is_kept_with_or_without_a_header(retina, tmp_path):
    root, written = retina
    data = retina_data(root, tmp_path)
    splits = data.splits
    assert len(splits.train) + len(splits.val) == len(TRAIN_GRADES)
    assert len(splits.test) == len(TEST_GRADES)
    assert torch.bincount(torch.cat([splits.train.labels, splits.val.labels])).tolist() == [14, 4, 6, 3, 3]
    assert splits.test.labels.tolist() == TEST_GRADES
    assert data.class_names[0] == "No DR" and data.num_classes == 5 and data.ordinal


def test_the_first_row_of_a_headerless_csv_is_kept(retina_copy, tmp_path):
    """pd.read_csv's default would take the first id and grade as column names and drop them."""
    first_id = "train0000_right"
    assert (retina_copy / "train_img.csv").read_text().splitlines()[0] == first_id
    data = retina_data(retina_copy, tmp_path, val_fraction=0.1)
    test_data = data.list_files()
    all_train = test_data.train.paths + test_data.val.paths
    assert str(retina_copy / f"{first_id}.jpeg") in all_train
    assert len(all_train) == len(TRAIN_GRADES)


def test_the_kaggle_table_layout(retina, tmp_path):
    root, written = retina
    ids, grades = written["train"]
    make_kaggle_table(root, ids, grades)
    data = retina_data(root, tmp_path, labels_csv="trainLabels.csv", val_fraction=0.2, test_fraction=0.2)
    splits = data.splits
    every = torch.cat([splits.train.labels, splits.val.labels, splits.test.labels])
    assert torch.bincount(every).tolist() == [14, 4, 6, 3, 3]
    assert len(splits.test) == 6 and len(splits.val) == 6  # seeded 20% each, of 30


@pytest.mark.parametrize(
    ("ids_edit", "labels_edit", "message"),
    [
        (None, {3: "7"}, r"labels outside 0..4 on line 4"),
        (None, {2: ""}, r"blank or NaN label in .*train_label.csv on line 3"),
        (None, {5: "NaN"}, r"blank or NaN label in .*train_label.csv on line 6"),
        ({4: ""}, None, r"blank or NaN id in .*train_img.csv on line 5"),
        ({6: "train0001_left"}, None, r"duplicate ids: 'train0001_left' on lines \[2, 7\]"),
        ({8: "no_such_eye"}, None, r"1 rows name files that do not exist:\n    line 9: .*no_such_eye.jpeg"),
        (None, {1: "severe"}, r"labels that are not integers on line 2"),
    ],
    ids=[
        "out_of_range",
        "blank_label",
        "nan_label",
        "blank_id",
        "duplicate_id",
        "missing_file",
        "not_integer",
    ],
)
def test_bad_rows_name_the_file_and_line(retina_copy, tmp_path, ids_edit, labels_edit, message):
    for name, edit in (("train_img.csv", ids_edit), ("train_label.csv", labels_edit)):
        if edit:
            lines = (retina_copy / name).read_text().splitlines()
            for index, value in edit.items():
                lines[index] = value
            write_column(retina_copy / name, lines, None)
    with pytest.raises(LabelCSVError, match=message):
        retina_data(retina_copy, tmp_path)


def test_id_and_label_files_of_different_length_is_an_error(retina_copy, tmp_path):
    lines = (retina_copy / "test_label.csv").read_text().splitlines()
    write_column(retina_copy / "test_label.csv", lines[:-2], None)
    with pytest.raises(LabelCSVError, match=r"test_img.csv has 7 ids but .*test_label.csv has 5 labels"):
        retina_data(retina_copy, tmp_path)


def test_weighted_sampler_draws_every_grade_about_equally(retina, tmp_path):
    root, _ = retina
    data = retina_data(root, tmp_path, sampler="weighted", batch_size=8)
    torch.manual_seed(0)
    drawn = torch.cat([labels for _ in range(40) for _, labels in data.train_dataloader()])
    share = torch.bincount(drawn, minlength=5).double() / len(drawn)
    assert share.min() > 0.15 and share.max() < 0.25  # 20% each; train alone is 47% grade 0
    plain = retina_data(root, tmp_path, batch_size=8)
    assert (torch.bincount(plain.splits.train.labels).double() / len(plain.splits.train)).max() > 0.4


def test_kappa_is_sklearns_quadratic_weighted_kappa():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, 200)
    predicted = np.clip(target + rng.integers(-1, 2, 200) * (rng.random(200) < 0.4), 0, 4)
    metrics = classification_metrics(5, "val/", ordinal=True)
    metrics.update(
        torch.nn.functional.one_hot(torch.from_numpy(predicted), 5).float(), torch.from_numpy(target)
    )
    expected = cohen_kappa_score(target, predicted, weights="quadratic")
    assert metrics.compute()["val/kappa"].item() == pytest.approx(expected, abs=1e-5)
    assert "val/kappa" not in classification_metrics(5, "val/").keys()


def test_images_in_a_sub_folder_are_found_and_data_image_dir_is_named(retina_copy, tmp_path):
    images = retina_copy / "train"
    images.mkdir()
    for image in retina_copy.glob("*.jpeg"):
        image.rename(images / image.name)  # as Kaggle's archive unpacks
    with pytest.raises(LabelCSVError, match=r"set data.image_dir=train"):
        retina_data(retina_copy, tmp_path)
    assert len(retina_data(retina_copy, tmp_path, image_dir="train").splits.train) > 0
