"""User errors: one message and exit status 1 in every script, the traceback with HYDRA_FULL_ERROR=1."""

import os
import subprocess
import sys

import pytest
from conftest import REPO

from imgcls.config import ConfigError
from imgcls.errors import UserError, exit_on_user_error
from imgcls.training.checkpointing import CheckpointReadError


def _raising(error: BaseException):
    @exit_on_user_error
    def main():
        raise error

    return main


def test_a_user_error_exits_with_its_kind_and_message(monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as stopped:
        _raising(ConfigError("data.batch_size=0 must be >= 1"))()
    assert stopped.value.code == "Config error: data.batch_size=0 must be >= 1"


def test_a_user_error_that_caused_another_is_the_one_shown(monkeypatch):
    """Hydra's instantiate wraps what a constructor raises (``raise ... from``)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    try:
        raise CheckpointReadError("x.ckpt is truncated")
    except CheckpointReadError as cause:
        wrapped = RuntimeError("Error in call to target")
        wrapped.__cause__ = cause
    with pytest.raises(SystemExit) as stopped:
        _raising(wrapped)()
    assert stopped.value.code == "Checkpoint error: x.ckpt is truncated"


def test_bugs_and_full_error_keep_their_traceback(monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(KeyError):
        _raising(KeyError("a bug"))()
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(UserError):
        _raising(ConfigError("shown with its traceback"))()


def _script(name: str, *args: str, env: dict | None = None):
    return subprocess.run(
        [sys.executable, str(REPO / name), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})},
    )


@pytest.mark.e2e
def test_predict_with_a_missing_checkpoint_prints_one_line(tmp_path):
    result = _script("predict.py", f"ckpt_path={tmp_path / 'gone.ckpt'}", f"input={tmp_path}")
    assert result.returncode == 1
    assert result.stderr.strip() == f"File not found: checkpoint not found: {tmp_path / 'gone.ckpt'}"


@pytest.mark.slow
def test_export_of_a_broken_checkpoint_prints_one_line_or_the_full_traceback(tmp_path):
    broken = tmp_path / "broken.ckpt"
    broken.write_text("not a checkpoint")
    args = (f"ckpt_path={broken}", f"output={tmp_path / 'model.onnx'}", f"hydra.run.dir={tmp_path}")
    result = _script("export.py", *args)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Checkpoint error: {broken} is not a PyTorch checkpoint")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_full_error_shows_the_traceback_of_a_user_error(tmp_path):
    result = _script("predict.py", f"ckpt_path={tmp_path / 'gone.ckpt'}", f"input={tmp_path}",
                     env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr and "MissingFileError" in result.stderr
