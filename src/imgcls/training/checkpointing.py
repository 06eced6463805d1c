"""Checkpoints that are never lost: atomic writes, loud failures, a save on SIGTERM / Ctrl-C."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from imgcls import console

# Exit codes of a process stopped by a signal, as shells report them (128 + signal number).
EXIT_SIGTERM = 143
EXIT_SIGINT = 130


class CheckpointSaveError(OSError):
    """A checkpoint could not be written; the run stops rather than train on unprotected."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a temp file next to the target, fsyncs it, then ``os.replace``s the target.

    A crash (or SIGKILL) during a save leaves the previous checkpoint intact, and a save
    that fails (read-only directory, full disk) raises instead of being logged and ignored.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as error:
            raise CheckpointSaveError(f"cannot write checkpoint {target}: {error}") from error
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
            _fsync_directory(target.parent)
        except BaseException as error:
            Path(temp).unlink(missing_ok=True)
            if isinstance(error, OSError):
                raise CheckpointSaveError(f"cannot write checkpoint {target}: {error}") from error
            raise


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class SaveOnInterrupt(Callback):
    """On SIGTERM or Ctrl-C, saves ``last.ckpt`` so that ``resume=<run dir>`` continues.

    Records which signal stopped the run in :attr:`exit_code` (143 / 130), which the run
    exits with after its logs are flushed.
    """

    def __init__(self) -> None:
        self.exit_code: int | None = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            self.exit_code = EXIT_SIGTERM
        elif isinstance(exception, KeyboardInterrupt):
            self.exit_code = EXIT_SIGINT
        else:
            return
        checkpoint = trainer.checkpoint_callback
        if checkpoint is None or checkpoint.dirpath is None or not trainer.training:
            return
        path = Path(checkpoint.dirpath) / f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}"
        trainer.save_checkpoint(path)
        console.info(
            f"\nInterrupted: saved {path}; continue with `python train.py resume={trainer.default_root_dir}`"
        )
