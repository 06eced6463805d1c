"""A checkpoint someone sends cannot run code; unreadable files say what is wrong; saved
checkpoints get the mode a plain save would."""

from __future__ import annotations

import json
import os
import pathlib
import stat

import pytest
import torch
from conftest import compose_config

from imgcls.inference.loading import load_classifier
from imgcls.training.checkpointing import AtomicCheckpointIO, CheckpointReadError, read_checkpoint
from imgcls.training.resume import last_global_step
from imgcls.training.run import train


class _Payload:
    """What a crafted checkpoint smuggles in: unpickling it calls ``Path.touch``."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> pathlib.Path:
    run_dir = tmp_path_factory.mktemp("safety") / "run"
    train(compose_config("model=logreg", "trainer.max_epochs=1", "report=false", output_dir=run_dir))
    return pathlib.Path(json.loads((run_dir / "metrics.json").read_text())["last_checkpoint"])


@pytest.fixture
def crafted(checkpoint, tmp_path) -> tuple[pathlib.Path, pathlib.Path]:
    marker = tmp_path / "code_ran"
    contents = torch.load(checkpoint, map_location="cpu", weights_only=True)
    contents["hyper_parameters"]["note"] = _Payload(marker)
    path = tmp_path / "sent_to_you.ckpt"
    torch.save(contents, path)
    return path, marker


@pytest.mark.e2e
def test_imgcls_checkpoints_load_as_weights_and_plain_data(checkpoint):
    assert read_checkpoint(checkpoint)["global_step"] == last_global_step(checkpoint) > 0
    assert load_classifier(checkpoint).class_names == [str(i) for i in range(10)]


@pytest.mark.e2e
def test_a_crafted_checkpoint_is_refused_by_every_reader_and_runs_nothing(crafted):
    path, marker = crafted
    for read in (load_classifier, last_global_step, lambda p: AtomicCheckpointIO().load_checkpoint(p)):
        with pytest.raises(CheckpointReadError, match="trust_checkpoint=true"):
            read(path)
    assert not marker.exists()
    load_classifier(path, trust=True)  # the user's explicit choice: the code runs
    assert marker.exists()


@pytest.mark.e2e
def test_a_crafted_checkpoint_cannot_resume_a_run(crafted, tmp_path):
    path, marker = crafted
    cfg = compose_config("model=logreg", "trainer.max_epochs=2", f"ckpt_path='{path}'", output_dir=tmp_path / "run")
    with pytest.raises(CheckpointReadError, match="more than weights and plain data"):
        train(cfg)
    assert not marker.exists()


def test_files_that_are_not_checkpoints_say_so(tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    truncated = tmp_path / "truncated.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:600])
    for path in (text, truncated):
        with pytest.raises(CheckpointReadError, match=f"{path.name} is not a PyTorch checkpoint"):
            load_classifier(path)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_classifier(tmp_path / "missing.ckpt")
    plain = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointReadError, match="not an imgcls checkpoint"):
        load_classifier(plain)


def test_a_saved_checkpoint_gets_the_mode_a_plain_save_would(tmp_path):
    previous = os.umask(0o022)
    try:
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(2)}, tmp_path / "a.ckpt")
        torch.save({"w": torch.zeros(2)}, tmp_path / "plain.ckpt")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "a.ckpt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.ckpt").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
