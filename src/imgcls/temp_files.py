"""Temporary files written next to their target and renamed into place, and the cleanup
of those a killed process left behind. One naming scheme for checkpoints, the decode cache
and run records: ``.<target name>.<pid>.<random>.tmp``."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def temporary_path(target: str | Path) -> Path:
    """A new temporary name beside ``target``, owned by this process."""
    target = Path(target)
    return target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def remove_stale(directory: str | Path) -> list[Path]:
    """Delete the temporary files in ``directory`` whose process no longer runs (killed
    mid-write: a checkpoint save or a cache build can leave gigabytes); return them.
    Files of running processes, this one included, are left alone."""
    removed = []
    for path in stale_temporaries(directory):
        try:
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def stale_temporaries(directory: str | Path) -> list[Path]:
    """The temporary files in ``directory`` whose process no longer runs."""
    try:
        entries = sorted(Path(directory).iterdir())
    except OSError:
        return []
    return [
        path
        for path in entries
        if (match := _TEMPORARY.match(path.name)) and not _running(int(match["pid"]))
    ]


def temporary_target(path: str | Path) -> str | None:
    """The name of the file a temporary file was to become, or None for another file."""
    match = _TEMPORARY.match(Path(path).name)
    return match["target"] if match else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
