"""Temporary files of killed processes are removed at the next save or cache build."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from imgcls.data.decode_cache import DecodeCache
from imgcls.temp_files import remove_stale, temporary_path
from imgcls.training.checkpointing import AtomicCheckpointIO


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _left_by(pid: int, target) -> os.PathLike:
    name = temporary_path(target).name.replace(f".{os.getpid()}.", f".{pid}.")
    path = target.parent / name
    path.write_bytes(b"half a file" * 1000)
    return path


def test_a_save_removes_temp_files_of_dead_processes_only(tmp_path):
    stale = _left_by(_dead_pid(), tmp_path / "last.ckpt")
    alive = _left_by(os.getpid(), tmp_path / "epoch003.ckpt")  # a save in progress, here
    AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(1)}, tmp_path / "last.ckpt")
    assert not stale.exists() and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["last.ckpt", alive.name])


def test_a_cache_build_removes_what_a_killed_build_left(tmp_path):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(image)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    stale = _left_by(_dead_pid(), cache_dir / "0123abcd.npy")
    DecodeCache(cache_dir, progress=False).decode([str(image)], (8, 8), 1)
    assert not stale.exists()
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".tmp")]


def test_other_files_are_never_touched(tmp_path):
    for name in ("last.ckpt", ".hidden", "x.123.tmp", ".a.b.tmp"):
        (tmp_path / name).write_text("keep")
    assert remove_stale(tmp_path) == []
    assert len(list(tmp_path.iterdir())) == 4
