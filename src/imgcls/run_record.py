"""A run's record, ``metrics.json``: what it did and how it ended. Its one owner.

Written once per run by the process of rank zero (atomically, so a reader never sees half
a file), read by resume, the sweep's end-of-run table and the sweep summary. Light on
purpose: reading records imports neither torch nor Lightning.

Statuses: ``ok``, ``failed`` and ``interrupted`` are written by the run; a reader reports
``missing`` (no file: the job died, or is still running) and ``unreadable``; a sweep summary
lists a planned job that never started as ``not run``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from imgcls.temp_files import temporary_path

METRICS_FILE = "metrics.json"
# What the run resolved its ``auto`` settings to (precision, grouped steps, memory format),
# next to Hydra's .hydra/config.yaml.
RESOLVED_FILE = "resolved.yaml"
OK = "ok"
MISSING = "missing"
UNREADABLE = "unreadable"
NOT_RUN = "not run"
# A sweep's job directories are those Hydra saved a config in.
JOB_CONFIG = Path(".hydra") / "config.yaml"


def record_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / METRICS_FILE


def write_record(run_dir: str | Path, record: dict, rank_zero: bool = True) -> Path | None:
    """Write ``record`` as the run's ``metrics.json`` (other ranks write nothing)."""
    if not rank_zero:
        return None
    path = record_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    temporary.write_text(json.dumps(record, indent=2))
    os.replace(temporary, path)
    return path


def read_record(run_dir: str | Path) -> dict:
    """The run's record; ``{"status": "missing"|"unreadable", "error": ...}`` when there is none."""
    path = record_path(run_dir)
    if not path.is_file():
        return {"status": MISSING, "error": f"no {METRICS_FILE}: the job died, or is still running"}
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return {"status": UNREADABLE, "error": f"unreadable {path}: {error}"}
    if not isinstance(record, dict):
        return {"status": UNREADABLE, "error": f"unreadable {path}: not a JSON object"}
    return record


def finished_record(run_dir: str | Path) -> dict | None:
    """The record of a run that completed, else None."""
    record = read_record(run_dir)
    return record if record.get("status") == OK else None


def sweep_jobs(sweep_dir: str | Path) -> list[Path]:
    """A sweep's job directories, in job order."""
    return sorted(config.parent.parent for config in Path(sweep_dir).glob(f"*/{JOB_CONFIG}"))


def sweep_records(sweep_dir: str | Path) -> list[tuple[Path, dict]]:
    """Each job directory of a sweep with its record."""
    return [(job, read_record(job)) for job in sweep_jobs(sweep_dir)]
