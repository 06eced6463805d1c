"""A sweep survives its jobs: a failed job is recorded, the others run, the end reports it.

Hydra's sweepers stop at the first job that raises (and a ``SystemExit`` ends the whole
multirun), so in a sweep a run's failure is returned as ``None`` instead: a grid goes on, and
Optuna records the trial as failed. (Not NaN: with optuna 2.10, ``Study.tell`` raises on NaN
and hydra-optuna-sweeper 1.3's error path then tells the values again, which ends the sweep.)
:class:`SweepSummary` then summarises every job and makes the sweep exit non-zero when any
failed.

SIGTERM and Ctrl-C stop the whole sweep instead: once the current job has saved its
checkpoint, :func:`end_interrupted_sweep` writes the summary (which lists the jobs that did
not run) and exits with 143 / 130. That is for sweeps whose jobs run in this process (Hydra's
basic launcher); on SLURM each job is its own process, stopped on its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from imgcls.config import SWEEP_STAMP_ENV, SWEPT_KEYS_ENV
from imgcls.run_record import OK, sweep_records

# What a failed job returns to the sweeper.
FAILED = None


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def in_process_sweep() -> bool:
    """A multirun whose jobs run one after another in this process (Hydra's basic launcher)."""
    return in_multirun() and str(HydraConfig.get().launcher.get("_target_", "")).endswith(".BasicLauncher")


def survives(error: BaseException) -> bool:
    """Whether a sweep goes on after a job failed with ``error``: always, except Ctrl-C."""
    return in_multirun() and not isinstance(error, KeyboardInterrupt)


def swept_keys(config: DictConfig) -> list[str]:
    """The keys a multirun varies: its sweep overrides on the command line (``a=1,2``,
    ``choice(...)``, ``interval(...)``) and the sweeper's own ``params`` (an Optuna search space)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    keys = [o.key_or_group for o in overrides if o.is_sweep_override()]
    keys += list(OmegaConf.select(config, "hydra.sweeper.params", default=None) or {})
    return sorted(set(keys))


class SweptKeys(Callback):
    """Hydra callback (conf/hydra/default.yaml): hands the swept keys to the jobs, whose
    directory names (``imgcls.job_name``) show them. Through the environment, which the jobs
    inherit wherever the launcher starts them (this process, workers, SLURM)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        os.environ[SWEPT_KEYS_ENV] = ",".join(swept_keys(config))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        os.environ.pop(SWEPT_KEYS_ENV, None)


class SweepSummary(Callback):
    """Hydra callback (conf/hydra/default.yaml): summarises a multirun when it ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        records = summarize(Path(config.hydra.sweep.dir))
        # Here, not in SweptKeys: Hydra calls the end callbacks in reverse order, and the
        # directory's name must hold until the summary is written. A next sweep in this
        # process gets its own directory.
        os.environ.pop(SWEEP_STAMP_ENV, None)
        failures = [(job_dir, record) for job_dir, record in records if record.get("status") != OK]
        if failures:
            lines = "\n".join(
                f"  {job_dir}: {record.get('error', record.get('status'))}" for job_dir, record in failures
            )
            sys.exit(f"{len(failures)} of {len(records)} sweep jobs failed:\n{lines}")


def end_interrupted_sweep(exit_code: int) -> None:
    """Stop the sweep after the job a signal interrupted: summary, then exit ``exit_code``.

    The ``SystemExit`` ends Hydra's job loop, so no later job starts (a scheduler's grace
    period after SIGTERM is short) and Hydra's own end-of-sweep callbacks do not run.
    """
    from imgcls.training.checkpointing import EXIT_SIGTERM

    summarize(Path(HydraConfig.get().sweep.dir))
    print(
        f"Sweep stopped by {'SIGTERM' if exit_code == EXIT_SIGTERM else 'Ctrl-C'} after the current job saved "
        "its checkpoint; the summary lists the jobs that did not run.",
        file=sys.stderr,
    )
    raise SystemExit(exit_code)


def summarize(sweep_dir: Path) -> list[tuple[Path, dict]]:
    """Print the job table and write the sweep summary; returns the job records."""
    records = sweep_records(sweep_dir)
    print_job_table(records)
    try:
        from imgcls.reports.sweep_summary import write_sweep_summary
    except ImportError:
        return records
    # Hydra turns a callback's exception into a warning: a summary that cannot be written
    # must not also hide the failed jobs (and the exit code).
    try:
        paths = write_sweep_summary(sweep_dir)
        print(f"Sweep summary: {paths.get('markdown')}")
    except Exception as error:
        print(f"Could not write the sweep summary: {type(error).__name__}: {error}", file=sys.stderr)
    return records


def print_job_table(records: list[tuple[Path, dict]]) -> None:
    """One line per job: status, the monitored metric's best value, and the error if any."""
    width = max([3, *(len(job_dir.name) for job_dir, _ in records)])
    print(f"\n{'job':<{width}} {'status':<12} {'best':>10}  error")
    for job_dir, record in records:
        value = (record.get("best") or {}).get(record.get("monitor"))
        best = f"{value:.4f}" if isinstance(value, int | float) else "-"
        error = (record.get("error") or "").splitlines()[0][:100] if record.get("error") else ""
        print(f"{job_dir.name:<{width}} {record.get('status', '?'):<12} {best:>10}  {error}")
