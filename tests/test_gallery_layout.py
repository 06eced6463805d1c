"""Gallery figures (error gallery, suspect labels): every title fits its cell, none overlaps
another cell's image or title, however long the file and class names."""

from __future__ import annotations

import itertools

import numpy as np
from matplotlib.text import Text

from imgcls.metrics import Predictions
from imgcls.reports.error_gallery import plot_sample_grid

LONG_NAME = "IMG_20240101_123456_a_photo_from_a_phone_with_a_very_long_file_name_000177.jpg"


def _samples(count: int = 8):
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=count)
    names = ["a_long_class_name_number_one", "another_long_class_name", "short"]
    split = Predictions(
        "validation", probabilities, (probabilities.argmax(1) + 1) % 3, names,
        image_source=rng.integers(0, 255, (count, 3, 8, 8), dtype=np.uint8),
        sample_paths=[f"/data/{k}_{LONG_NAME}" for k in range(count)],
    )
    return [(split, row) for row in range(count)]


def _boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    used = [ax for ax in fig.axes if ax.images]
    return ([ax.get_window_extent(renderer) for ax in used],
            [ax.title.get_window_extent(renderer) for ax in used],
            next(text for text in fig.findobj(Text) if text.get_text() == fig.get_suptitle()).get_window_extent(renderer),
            fig.bbox)


def test_gallery_titles_fit_and_overlap_no_image_or_title():
    fig = plot_sample_grid(_samples(), columns=4, title="Suspect labels: given → predicted (p)", show_split=True)
    images, titles, suptitle, page = _boxes(fig)
    for box in [*titles, suptitle]:
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
    for (i, title), (j, image) in itertools.product(enumerate(titles), enumerate(images)):
        assert not title.overlaps(image), f"title {i} overlaps image {j}"
    for (i, a), (j, b) in itertools.combinations(enumerate([*titles, suptitle]), 2):
        assert not a.overlaps(b), f"titles {i} and {j} overlap"
    shown = [ax.get_title() for ax in fig.axes if ax.images]
    assert all("000177.jpg" in text.replace("\n", "") for text in shown)  # the name's distinctive end stays
