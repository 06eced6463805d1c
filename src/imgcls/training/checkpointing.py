"""Checkpoint files: never lost (atomic writes, loud failures, a save on SIGTERM / Ctrl-C) and
never run (read as weights and plain data only, with errors that say what is wrong)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from imgcls import console
from imgcls.errors import MissingFileError, UserError
from imgcls.temp_files import remove_stale, temporary_path

# Exit codes of a process stopped by a signal, as shells report them (128 + signal number).
EXIT_SIGTERM = 143
EXIT_SIGINT = 130


class CheckpointSaveError(UserError, OSError):
    """A checkpoint could not be written; the run stops rather than train on unprotected."""

    kind = "Checkpoint error"


class CheckpointReadError(UserError, ValueError):
    """A file is not a readable checkpoint, or would run code to load."""

    kind = "Checkpoint error"


# What a checkpoint from someone else must not do when it is loaded: run code. torch's
# weights-only unpickler allows tensors and plain containers, all an imgcls checkpoint holds.
TRUST_HINT = (
    "imgcls loads checkpoints as weights and plain data only, so that a file cannot run code. "
    "If you trust where this file comes from, pass trust_checkpoint=true."
)


def read_checkpoint(path, map_location="cpu", trust: bool = False, mmap: bool = False) -> dict:
    """The checkpoint at ``path``, loaded with ``weights_only`` unless ``trust``; a file that is
    missing, not a checkpoint, truncated, or that needs code to load raises with the reason."""
    import pickle

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=not trust, mmap=mmap)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            detail = str(error).split("Please file an issue")[0].strip().splitlines()[-1]
            raise CheckpointReadError(
                f"{path} holds more than weights and plain data ({detail}). {TRUST_HINT}"
            ) from None
        raise CheckpointReadError(f"{path} is not a PyTorch checkpoint: {error}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointReadError(
            f"{path} is not a PyTorch checkpoint, or is truncated (an interrupted copy or download?): "
            f"{type(error).__name__}: {error}"
        ) from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a temp file next to the target, fsyncs it, then ``os.replace``s the target.

    A crash (or SIGKILL) during a save leaves the previous checkpoint intact, and a save
    that fails (read-only directory, full disk) raises instead of being logged and ignored.
    """

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        """Resume and ``trainer.test(ckpt_path=...)`` read weights and plain data only."""
        return read_checkpoint(path, map_location=map_location, trust=weights_only is False)

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale(target.parent)  # what saves killed mid-write left behind
            # os.open with 0o666, not mkstemp's 0o600: the saved file gets the mode a plain
            # save would (the process umask applies), and the rename keeps it.
            temp = temporary_path(target)
            handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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


class NumberedCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint whose ``filename`` may also use ``{epoch_number}``: the
    epoch's number as the console, train.log, report and metrics.json show it (1-based), so
    the best of ``epoch 4/20`` is ``epoch004.ckpt``. ``{epoch}`` keeps Lightning's meaning
    (0-based)."""

    @property
    def state_key(self) -> str:
        # The key Lightning's ModelCheckpoint has with the same settings: checkpoints written
        # by it (imgcls before this class) restore their best-model tracking on resume.
        key = super().state_key
        return ModelCheckpoint.__qualname__ + key[len(type(self).__qualname__) :]

    def format_checkpoint_name(self, metrics, filename=None, ver=None, prefix=None) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch_number": torch.as_tensor(int(metrics["epoch"]) + 1)}
        return super().format_checkpoint_name(metrics, filename=filename, ver=ver, prefix=prefix)
