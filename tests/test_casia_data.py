"""data=casia: Chinese folder names, 80x60 grayscale, seeded validation, extra test sets."""

import os
import shutil
import warnings

import numpy as np
import pytest
import torch
from image_fixtures import CHARACTERS, make_casia, make_character_folders, set_up_data

from imgcls.data.casia import CasiaDataModule

TRAIN_PER_CLASS, TEST_PER_CLASS = 10, 4


@pytest.fixture(scope="module")
def casia_tree(tmp_path_factory):
    root = make_casia(
        tmp_path_factory.mktemp("casia") / "CASIA-Dataset",
        train_per_class=TRAIN_PER_CLASS,
        test_per_class=TEST_PER_CLASS,
    )
    make_character_folders(root.parent / "poorly_written", CHARACTERS, 3, seed=5)
    return root


def casia_data(root, tmp_path, **overrides):
    return set_up_data(CasiaDataModule, tmp_path, root=root, **overrides)


def test_chinese_folders_load_as_80x60_grayscale_with_a_seeded_20_percent_validation(casia_tree, tmp_path):
    data = casia_data(casia_tree, tmp_path)
    assert data.class_names == sorted(CHARACTERS)
    assert data.input_shape == [1, 80, 60]
    assert torch.bincount(data.splits.val.labels).tolist() == [2] * len(CHARACTERS)  # 20% of 10 each
    assert len(data.splits.train) == 8 * len(CHARACTERS)
    assert len(data.splits.test) == TEST_PER_CLASS * len(CHARACTERS)
    # Ink is dark on light paper, as rendered: the pixels are real characters, not blanks.
    images = data.splits.train.images.float()
    assert images.mean() > 150 and images.amin(dim=(1, 2, 3)).max() < 100
    again = casia_data(casia_tree, tmp_path)
    assert torch.equal(again.splits.val.images, data.splits.val.images)


def test_extra_test_sets_are_served_after_the_main_test_set(casia_tree, tmp_path):
    data = casia_data(casia_tree, tmp_path, extra_test={"mandarin": casia_tree.parent / "poorly_written"})
    assert list(data.test_sets) == ["test", "mandarin"]
    assert len(data.test_sets["mandarin"]) == 3 * len(CHARACTERS)
    assert len(data.test_dataloader()) == 2


def test_an_extra_test_set_with_other_characters_names_the_differences(casia_tree, tmp_path):
    other = shutil.copytree(casia_tree.parent / "poorly_written", tmp_path / "other")
    shutil.rmtree(other / "火")
    os.rename(other / "水", other / "鱼")
    with pytest.raises(ValueError, match=r"missing \['水', '火'\], extra \['鱼'\]"):
        casia_data(casia_tree, tmp_path, extra_test={"mandarin": other})


def test_a_test_folder_with_a_missing_character_is_an_error(casia_tree, tmp_path):
    root = shutil.copytree(casia_tree, tmp_path / "casia")
    shutil.rmtree(root / "Test" / "山")
    with pytest.raises(ValueError, match=r"Test do not match the training classes: missing \['山'\]"):
        casia_data(root, tmp_path)


def test_confusion_matrix_renders_chinese_class_names_without_missing_glyphs(tmp_path):
    from imgcls.reports.confusion_matrix import plot_confusion_matrix
    from imgcls.reports.figures import plt

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)"
        figure = plot_confusion_matrix(np.eye(len(CHARACTERS)) * 5, CHARACTERS)
        figure.savefig(tmp_path / "cm.png")
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    plt.close(figure)
    assert labels == CHARACTERS
