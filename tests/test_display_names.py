"""Names that are not valid UTF-8 (unzipped CASIA archives): trained on, shown with escapes."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config
from PIL import Image

from imgcls.display import display_name

GBK_BYTES = b"\xb0\xa1"  # GBK for a character; not UTF-8
SHOWN = "\\xb0\\xa1"


def test_display_name_escapes_only_the_bytes_that_are_not_utf8():
    assert display_name(os.fsdecode(GBK_BYTES)) == SHOWN
    assert display_name(os.fsdecode("水".encode() + b"\xff")) == "水\\xff"
    assert display_name("plain 水") == "plain 水"


def _tiny_folder_dataset(root: Path, per_class: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for index, name in enumerate([b"a", b"b", GBK_BYTES]):
        folder = os.path.join(os.fsencode(root), name)
        os.makedirs(folder)
        for i in range(per_class):
            pixels = np.clip(rng.normal(60 * index + 40, 20, (8, 8)), 0, 255).astype(np.uint8)
            with open(os.path.join(folder, f"{i}.png".encode()), "wb") as file:
                Image.fromarray(pixels).save(file, format="PNG")
    # A bad file with such a name too: the decode cache's record and bad_files.csv hold it.
    with open(os.path.join(os.fsencode(root), b"a", GBK_BYTES + b".png"), "wb") as file:
        file.write(b"not a png")
    return root


@pytest.mark.e2e
def test_a_class_folder_named_in_gbk_trains_reports_and_logs(tmp_path):
    from imgcls.training.run import train

    root = _tiny_folder_dataset(tmp_path / "images")
    cfg = compose_config(
        "data=folder",
        f"data.root={root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.image_size=[8,8]",
        "data.channels=1",
        "data.batch_size=8",
        "data.skip_bad=true",
        "data.max_bad_fraction=0.1",
        "data.augment.hflip=false",
        "data.augment.crop_padding=0",
        "model=logreg",
        "trainer.max_epochs=2",
        output_dir=tmp_path / "run",
    )
    train(cfg)
    run_dir = tmp_path / "run"
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "ok"
    report = (run_dir / "report" / "report.md").read_text(encoding="utf-8")
    assert SHOWN in report  # the per-class table, escaped
    assert SHOWN in (run_dir / "report" / "test" / "confusion_matrix.csv").read_text(encoding="utf-8")
    assert list(run_dir.glob("tensorboard/**/events.out.tfevents.*"))  # the figures were logged
    assert f"{SHOWN}.png" in (run_dir / "bad_files.csv").read_text(encoding="utf-8")
    (record,) = (tmp_path / "cache").glob("*.json")
    (bad,) = json.loads(record.read_text())["bad"]
    assert bad[1].endswith(os.fsdecode(GBK_BYTES) + ".png")  # exactly the file's name, read back
