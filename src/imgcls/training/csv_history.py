"""The CSV log of a run that is resumed keeps the epochs logged before the interruption."""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger

from imgcls.temp_files import temporary_path


class ResumableCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger``, plus ``purge_step`` as TensorBoard's logger has it.

    Lightning's writer deletes an existing ``metrics.csv`` when it starts, which on a resume
    lost every epoch before the interruption (and with them the report's training curves
    and a sweep's validation curves). Given ``purge_step`` (the resumed checkpoint's global
    step), the old file is set aside instead; the rows logged before that step go first into
    the new file, at its first save, and rows from that step on (logged by the interrupted
    process after its checkpoint) are logged again by this one. A resume that fails before
    its first save puts the old file back untouched.
    """

    def __init__(self, *args, purge_step: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.purge_step = purge_step
        self._started = False
        self._set_aside: Path | None = None

    @property
    def _metrics_file(self) -> Path:
        return Path(self.log_dir) / "metrics.csv"

    @property
    def experiment(self):
        if self._started or self.purge_step is None:
            return super().experiment
        self._started = True
        kept = []
        if self._metrics_file.is_file():
            kept = _rows_before(self._metrics_file, self.purge_step)
            self._set_aside = temporary_path(self._metrics_file)
            os.replace(self._metrics_file, self._set_aside)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Previous log files in this directory will be deleted")
            writer = super().experiment
        writer.metrics = kept + writer.metrics
        return writer

    def save(self) -> None:
        super().save()
        if self._set_aside is not None and self._metrics_file.is_file():
            self._set_aside.unlink(missing_ok=True)  # its rows are in the new file now
            self._set_aside = None

    def finalize(self, status: str) -> None:
        if status != "success" and self._set_aside is not None and not self._metrics_file.is_file():
            os.replace(self._set_aside, self._metrics_file)  # nothing new was saved: as it was
            self._set_aside = None
            self.experiment.metrics = []
            return
        super().finalize(status)


def _rows_before(path: Path, step: int) -> list[dict]:
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    return [
        {key: value for key, value in row.items() if value != ""}
        for row in rows
        if row.get("step") not in (None, "") and int(float(row["step"])) < step
    ]
