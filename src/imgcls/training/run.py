"""One training run: data, model and trainer from the config; fit, test, record."""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
import warnings
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from imgcls.config import ConfigError, check_required, print_config_tree
from imgcls.training.checkpointing import EXIT_SIGINT, SaveOnInterrupt
from imgcls.training.resume import finished_run, last_global_step
from imgcls.training.sweep import FAILED, in_multirun, survives

METRICS_FILE = "metrics.json"


def train(cfg: DictConfig) -> float | None:
    """Train and test as configured; write ``metrics.json`` to the run directory.

    Returns the best value of the monitored metric (what a sweeper optimizes); in a sweep, a
    failed run returns ``FAILED`` (None, which Optuna records as a failed trial) so that the
    sweep goes on. SIGTERM and Ctrl-C save a checkpoint and exit with 143 and 130.
    """
    check_required(cfg)
    if cfg.get("print_config", True):
        print_config_tree(cfg)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("resume") and (done := finished_run(run_dir)):
        print(f"Run {run_dir} already finished ({done.get('epochs_trained')} epochs): nothing to resume.")
        return (done.get("best") or {}).get(cfg.monitor.metric)
    started = time.time()
    interrupt = SaveOnInterrupt()
    try:
        return _fit_and_test(cfg, run_dir, started, interrupt)
    except BaseException as error:
        # A failed run still leaves a record, so a sweep summary can list it with its error.
        failure = {
            "status": "interrupted" if interrupt.exit_code else "failed",
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
            "wall_time_s": round(time.time() - started, 2),
        }
        if _is_rank_zero():
            (run_dir / METRICS_FILE).write_text(json.dumps(failure, indent=2))
        if survives(error) and interrupt.exit_code != EXIT_SIGINT:
            print(f"Sweep job failed, the sweep goes on: {run_dir}\n{failure['traceback']}", file=sys.stderr)
            return FAILED
        if interrupt.exit_code:
            raise SystemExit(interrupt.exit_code) from error
        raise


def _fit_and_test(cfg: DictConfig, run_dir: Path, started: float, interrupt: SaveOnInterrupt) -> float | None:
    # Lightning's own use of a torch API deprecated under it; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar

    from imgcls.models.classifier import ImageClassifier
    from imgcls.reports.tensorboard import log_final_hparams
    from imgcls.training.cuda_probe import use_cached_probe_without_driver
    from imgcls.training.fused_steps import resolve_fused_steps
    from imgcls.training.history import MetricsHistory
    from imgcls.training.precision import resolve_precision
    from imgcls.training.rng import RngState

    use_cached_probe_without_driver()
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    model = ImageClassifier(
        net=_plain(cfg.model.net),
        num_classes=datamodule.num_classes,
        class_names=datamodule.class_names,
        input_shape=datamodule.input_shape,
        mean=datamodule.mean,
        std=datamodule.std,
        optimizer=_plain(cfg.optimizer),
        scheduler=_plain(cfg.scheduler),
        monitor=cfg.monitor.metric,
        label_smoothing=cfg.loss.label_smoothing,
        class_weights=class_weights(cfg.loss.class_weights, datamodule.class_counts),
        test_set_names=list(datamodule.test_sets),
        channels_last=cfg.get("channels_last", False),
        ordinal=getattr(datamodule, "ordinal", False),
    )
    # Lightning unwraps a compiled module and compiles its forward in place.
    fitted = _compiled(model) if cfg.get("compile", False) else model
    history = MetricsHistory(cfg.monitor.metric, cfg.monitor.mode)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks += [history, RngState(), interrupt]
    loggers = [_logger(c, cfg, callbacks) for c in (cfg.get("logger") or {}).values() if c]
    # Callbacks that a switched-off feature makes meaningless are dropped rather than failing
    # the run: the LR monitor without loggers, the progress bar with enable_progress_bar=false.
    if not loggers:
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    resolve_precision(cfg)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    _refuse_ddp_in_local_sweep(trainer)
    batch_bytes = datamodule.batch_size * math.prod(datamodule.input_shape)  # uint8 images
    fused_steps = resolve_fused_steps(cfg.get("fused_steps", 1), trainer, batch_bytes)
    datamodule.fused_steps = fused_steps
    model.fuse_steps(fused_steps, datamodule.batch_size)

    if cfg.train:
        trainer.fit(fitted, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    test_metrics = {}
    if cfg.test:
        best_path = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        ckpt = best_path or (None if cfg.train else cfg.get("ckpt_path"))
        results = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt)
        test_metrics = {key: value for result in results for key, value in result.items()}

    report = None
    if cfg.get("report", False) and cfg.test:
        from imgcls.reports.report import write_run_report

        report = write_run_report(model, datamodule, run_dir, trainer.loggers, trainer.global_step)

    best = history.best() or {}
    summary = {
        "status": "ok",
        "monitor": cfg.monitor.metric,
        "best_epoch": best.get("epoch"),
        "best": {key: value for key, value in best.items() if key != "epoch"},
        "test": test_metrics,
        "epochs_trained": trainer.current_epoch,
        "best_checkpoint": trainer.checkpoint_callback.best_model_path
        if trainer.checkpoint_callback
        else None,
        "last_checkpoint": _last_checkpoint(trainer),
        "params": {
            "total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "frozen": sum(p.numel() for p in model.parameters() if not p.requires_grad),
        },
        "wall_time_s": round(time.time() - started, 2),
        "report": report,
    }
    if trainer.is_global_zero:
        (run_dir / METRICS_FILE).write_text(json.dumps(summary, indent=2))
    log_final_hparams(trainer.loggers, cfg, {**summary["best"], **test_metrics})
    _print_where(run_dir, report)
    return summary["best"].get(cfg.monitor.metric)


def class_weights(setting, class_counts: list[int]) -> list[float] | None:
    """``null`` (no weights), ``balanced`` (n / (k * count), as sklearn), or one weight per class."""
    if setting is None:
        return None
    if setting == "balanced":
        total, k = sum(class_counts), len(class_counts)
        return [total / (k * count) if count else 0.0 for count in class_counts]
    weights = [float(w) for w in setting]
    if len(weights) != len(class_counts):
        raise ValueError(f"loss.class_weights has {len(weights)} values for {len(class_counts)} classes")
    return weights


def _logger(config: DictConfig, cfg: DictConfig, callbacks: list):
    """A logger; on resume, TensorBoard drops what the interrupted run logged after the checkpoint."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    extra = {}
    if cfg.get("resume") and config.get("_target_", "").endswith("TensorBoardLogger"):
        last = [
            Path(c.dirpath) / "last.ckpt" for c in callbacks if isinstance(c, ModelCheckpoint) and c.dirpath
        ]
        step = last_global_step(last[0]) if last else None
        # Steps before the checkpoint's global step log at x < step (an epoch's end at step - 1);
        # everything from x = step on was logged after it, and the resumed run logs it again.
        extra = {"purge_step": step} if step is not None else {}
    return instantiate(config, **extra)


def _last_checkpoint(trainer) -> str | None:
    checkpoint = trainer.checkpoint_callback
    path = Path(checkpoint.dirpath) / "last.ckpt" if checkpoint and checkpoint.dirpath else None
    return str(path) if path and path.is_file() else None


def _refuse_ddp_in_local_sweep(trainer) -> None:
    """Lightning's DDP re-runs the command line for each process; in a local ``-m`` sweep that
    command is the whole sweep (Lightning #11300)."""
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

    if in_multirun() and isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher):
        raise ConfigError(
            "trainer=ddp cannot run inside a local -m sweep (Lightning #11300). Run the sweep's "
            "jobs on SLURM (hydra/launcher=slurm), use trainer.strategy=ddp_spawn, or start each "
            "DDP run on its own without -m."
        )


def _is_rank_zero() -> bool:
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _compiled(model):
    import torch

    return torch.compile(model)


def _plain(node) -> dict | None:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _print_where(run_dir: Path, report: str | None) -> None:
    print(f"\nRun directory: {run_dir}")
    print(f"  metrics:     {run_dir / METRICS_FILE}")
    if report:
        print(f"  report:      {report}")
    print(f"  checkpoints: {run_dir / 'checkpoints'}")
    print(f"  TensorBoard: tensorboard --logdir {run_dir}")
