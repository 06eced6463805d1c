"""Checkpoints are written atomically, and a save that fails stops the run loudly."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
import torch
from conftest import compose_config

from imgcls.training.checkpointing import AtomicCheckpointIO, CheckpointSaveError


def test_a_crash_during_a_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, target)

    def crash_halfway(obj, file):
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process is stopped in the middle of the write

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, target)
    monkeypatch.undo()

    assert torch.load(target, weights_only=True) == {"step": 1}
    assert os.listdir(tmp_path) == ["last.ckpt"], "no temp file is left behind"


def test_a_checkpoint_save_to_a_read_only_directory_fails_the_run(tmp_path, monkeypatch):
    from imgcls.training.run import train

    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:
        # Root ignores directory permissions: refuse writes there as the kernel would for a user.
        create = os.open

        def refuse_read_only(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and Path(path).parent == read_only:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return create(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse_read_only)
    cfg = compose_config(
        "model=logreg",
        "debug=limit",
        "logger=csv",
        f"callbacks.last_checkpoint.dirpath={read_only}",
        output_dir=tmp_path / "run",
    )

    with pytest.raises(CheckpointSaveError, match="cannot write checkpoint .*last.ckpt.*Permission denied"):
        train(cfg)

    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "failed"
    assert "CheckpointSaveError: cannot write checkpoint" in record["error"]
    assert os.listdir(read_only) == []
