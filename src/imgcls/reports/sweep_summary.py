"""One table for a whole sweep: a row per job, the winner first, failed jobs marked; and its plots.

``python -m imgcls.reports.sweep_summary outputs/<task>/multiruns/<timestamp>``
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator
from omegaconf import OmegaConf

from imgcls.reports.curves import CSV_METRICS, epoch_metrics
from imgcls.reports.figures import plt
from imgcls.reports.tables import to_markdown
from imgcls.run_record import NOT_RUN, OK, read_record, sweep_jobs

SUMMARY_NAME = "sweep_summary"

OVERRIDES = Path(".hydra") / "overrides.yaml"
CONFIG = Path(".hydra") / "config.yaml"
# What Hydra's basic sweeper saves at the start of a grid sweep: its arguments, so its jobs.
MULTIRUN_CONFIG = "multirun.yaml"


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Every job of a sweep that saved its overrides, in job order."""
    return [job for job in sweep_jobs(sweep_dir) if (job / OVERRIDES).is_file()]


def summarize_sweep(sweep_dir: str | Path) -> pd.DataFrame:
    """A row per job: the overrides that vary, status, the monitored best value and epoch,
    test metrics of the best checkpoint, parameters, wall time and checkpoint.

    Sorted best first (by the monitored metric and its mode); failed and unfinished jobs last,
    then the jobs of a grid that did not run (the sweep was stopped), as ``not run``.
    """
    jobs = job_dirs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"{sweep_dir}: no job directories (none has {OVERRIDES})")
    records = [read_record(job) for job in jobs]
    overrides = [_overrides(job) for job in jobs]
    not_run = unstarted_jobs(sweep_dir, [_override_list(job) for job in jobs])
    varying = [
        key
        for key in dict.fromkeys(k for o in [*overrides, *not_run] for k in o)
        if len({o.get(key) for o in [*overrides, *not_run]}) > 1
    ]
    monitor, mode = _monitor(jobs)
    rows = []
    for job, record, override in zip(jobs, records, overrides, strict=True):
        best, test, params = record.get("best") or {}, record.get("test") or {}, record.get("params") or {}
        rows.append(
            {
                "job": job.name,
                **{key: override.get(key) for key in varying},
                "status": record.get("status", "unknown"),
                monitor: best.get(monitor, np.nan),
                "best_epoch": record.get("best_epoch"),
                **{key: value for key, value in test.items() if not key.endswith("/loss")},
                "params_trainable": params.get("trainable"),
                "params_total": params.get("total"),
                "wall_time_s": record.get("wall_time_s"),
                "error": record.get("error", ""),
                "best_checkpoint": record.get("best_checkpoint") or "",
            }
        )
    for override in not_run:
        rows.append({"job": "", **{key: override.get(key) for key in varying}, "status": NOT_RUN, monitor: np.nan})
    table = pd.DataFrame(rows).fillna({"error": "", "best_checkpoint": ""})
    for column in ("best_epoch", "params_trainable", "params_total"):
        table[column] = table[column].astype("Int64")
    ok = table["status"] == OK
    score = table[monitor].where(ok)
    table.insert(1, "winner", "")
    if score.notna().any():
        table.loc[score.idxmax() if mode == "max" else score.idxmin(), "winner"] = "★"
    order = np.lexsort([(-score if mode == "max" else score).fillna(np.inf).to_numpy(), (~ok).to_numpy()])
    table = table.iloc[order].reset_index(drop=True)
    table.attrs.update(monitor=monitor, mode=mode, varying=varying)
    return table


def write_sweep_summary(sweep_dir: str | Path) -> dict[str, Path]:
    """Write ``sweep_summary.csv``/``.md``, the metric-vs-lr plot and the val-curve overlay."""
    sweep_dir = Path(sweep_dir)
    table = summarize_sweep(sweep_dir)
    monitor = table.attrs["monitor"]
    paths = {"csv": sweep_dir / f"{SUMMARY_NAME}.csv", "markdown": sweep_dir / f"{SUMMARY_NAME}.md"}
    table.to_csv(paths["csv"], index=False)
    failed = table[~table["status"].isin([OK, NOT_RUN])]
    not_run = table[table["status"] == NOT_RUN]
    lines = [
        f"# Sweep summary: {sweep_dir.name}",
        "",
        f"{len(table) - len(not_run)} jobs, {len(failed)} not ok; sorted by best `{monitor}` "
        f"({table.attrs['mode']}), winner ★.",
        "",
        *([f"**{len(not_run)} jobs did not run** (the sweep was stopped): the `{NOT_RUN}` rows.", ""] if len(not_run) else []),
        to_markdown(table),
        "",
    ]
    varying = table.attrs["varying"]
    labels = {
        row["job"]: ", ".join(f"{key}={row[key]}" for key in varying) or row["job"]
        for _, row in table.iterrows()
    }
    figures = {
        "metric_vs_lr": (plot_metric_vs_lr(sweep_dir, monitor), sweep_dir / "metric_vs_lr.png"),
        "val_curves": (plot_val_curves(sweep_dir, monitor, labels), sweep_dir / "val_curves.png"),
    }
    for key, (figure, path) in figures.items():
        if figure is not None:
            figure.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(figure)
            paths[key] = path
            lines += [f"![{key}]({path.name})", ""]
    paths["markdown"].write_text("\n".join(lines))
    return paths


def plot_metric_vs_lr(sweep_dir: str | Path, monitor: str):
    """Best monitored value against the learning rate (log x), one line per model."""
    points = []
    for job in job_dirs(sweep_dir):
        record, config = read_record(job), _config(job)
        lr = OmegaConf.select(config, "optimizer.lr") if config is not None else None
        value = (record.get("best") or {}).get(monitor)
        if record.get("status") == OK and lr and value is not None:
            model = OmegaConf.select(config, "model.name", default=None) or "model"
            points.append({"model": model, "lr": float(lr), "value": float(value)})
    if not points:
        return None
    frame = pd.DataFrame(points).sort_values("lr")
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, group in frame.groupby("model", sort=True):
        ax.plot(group["lr"], group["value"], "-o", label=model)
    ax.set_xscale("log")
    ax.set(
        xlabel="learning rate", ylabel=f"best {monitor}", title=f"Best {monitor} against the learning rate"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_val_curves(sweep_dir: str | Path, monitor: str, labels: dict[str, str] | None = None):
    """The monitored validation metric and val loss per epoch, every job on the same axes.

    ``labels`` maps a job directory's name to its legend entry (default: the name).
    """
    curves = {}
    for job in job_dirs(sweep_dir):
        try:
            curves[(labels or {}).get(job.name, job.name)] = epoch_metrics(job / CSV_METRICS)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue  # no curve to draw: the job failed before its first epoch ended
    metrics = [m for m in dict.fromkeys([monitor, "val/loss"]) if any(m in c for c in curves.values())]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.5), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for label, epochs in curves.items():
            if metric in epochs:
                series = epochs[metric].dropna()
                ax.plot(series.index, series.values, "-o", markersize=3, label=label)
        ax.set(xlabel="Epoch", ylabel=metric, title=f"{metric}, every run")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def unstarted_jobs(sweep_dir: str | Path, started: list[list[str]]) -> list[dict[str, str]]:
    """The overrides of each job of a grid sweep that has no directory, in job order.

    The grid is expanded from ``multirun.yaml`` as Hydra's basic sweeper does (the cartesian
    product of the arguments, in their order); other sweepers save no such plan: none.
    """
    path = Path(sweep_dir) / MULTIRUN_CONFIG
    try:
        hydra = OmegaConf.load(path).hydra
        if not str(hydra.sweeper._target_).endswith(".BasicSweeper"):
            return []
        params = hydra.sweeper.get("params") or {}
        arguments = [f"{key}={value}" for key, value in params.items()] + list(hydra.overrides.task)
    except Exception:  # noqa: BLE001 - no plan (missing, another sweeper, not a config)
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices = {}
    for override in OverridesParser.create().parse_overrides(arguments):
        key = override.get_key_element()
        values = override.sweep_string_iterator() if override.is_sweep_override() else [override.get_value_element_as_str()]
        choices[key] = [f"{key}={value}" for value in values]
    left = Counter(tuple(sorted(job)) for job in started)
    planned = []
    for job in itertools.product(*choices.values()):
        if left[tuple(sorted(job))]:
            left[tuple(sorted(job))] -= 1
        else:
            planned.append(dict(item.split("=", 1) for item in job))
    return planned


def _override_list(job: Path) -> list[str]:
    return [str(item) for item in OmegaConf.to_container(OmegaConf.load(job / OVERRIDES))]


def _overrides(job: Path) -> dict[str, str]:
    items = _override_list(job)
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in items)


def _config(job: Path):
    return OmegaConf.load(job / CONFIG) if (job / CONFIG).is_file() else None


def _monitor(jobs: list[Path]) -> tuple[str, str]:
    """The monitored metric and mode of the sweep (from the first job config that has them)."""
    for job in jobs:
        config = _config(job)
        metric = config is not None and OmegaConf.select(config, "monitor.metric", default=None)
        if metric:
            return str(metric), str(OmegaConf.select(config, "monitor.mode", default="max"))
    return "val/acc", "max"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (outputs/<task>/multiruns/<time>)")
    args = parser.parse_args(argv)
    for kind, path in write_sweep_summary(args.sweep_dir).items():
        print(f"{kind:>13}: {path}")


if __name__ == "__main__":
    main()
