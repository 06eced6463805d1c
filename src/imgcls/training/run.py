"""One training run, composed from the config: data, classifier and trainer are built by
separate functions (the seams that tests, the benchmark and new features call), and
:func:`train` composes them: fit, one test pass, the report, the run's record."""

from __future__ import annotations

import math
import time
import traceback
import warnings
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from imgcls import console
from imgcls.config import ConfigError, check_required, check_values, print_config_tree
from imgcls.metrics import split_prefix
from imgcls.run_record import METRICS_FILE, RESOLVED_FILE, finished_record, write_record
from imgcls.training.checkpointing import EXIT_SIGINT, SaveOnInterrupt
from imgcls.training.device_slots import pin_parallel_job
from imgcls.training.resume import ResumeOverrides, last_global_step, task_overrides
from imgcls.training.sweep import FAILED, end_interrupted_sweep, in_multirun, in_process_sweep, survives


def train(cfg: DictConfig, extra_callbacks=()) -> float | None:
    """Train and test as configured; write ``metrics.json`` to the run directory.

    ``extra_callbacks`` join the configured ones. Returns the best value of the monitored
    metric (what a sweeper optimizes); in a sweep, a failed run returns ``FAILED`` (None,
    which Optuna records as a failed trial) so that the sweep goes on. SIGTERM and Ctrl-C
    save a checkpoint and exit with 143 and 130, ending a sweep run in this process too.
    """
    check_required(cfg)
    if cfg.get("print_config", True):
        print_config_tree(cfg)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("resume") and (done := finished_record(run_dir)):
        console.info(
            f"Run {run_dir} already finished ({done.get('epochs_trained')} epochs): nothing to resume."
        )
        return (done.get("best") or {}).get(cfg.monitor.metric)
    if in_multirun() and (gpu := pin_parallel_job()) is not None:
        console.info(f"Parallel sweep job {run_dir.name}: GPU {gpu}")
    started = time.time()
    interrupt = SaveOnInterrupt()
    try:
        return _fit_and_test(cfg, run_dir, started, [*extra_callbacks, interrupt])
    except BaseException as error:
        # A failed run still leaves a record, so a sweep summary can list it with its error.
        failure = {
            "status": "interrupted" if interrupt.exit_code else "failed",
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
            "started_at": started,
            "wall_time_s": round(time.time() - started, 2),
        }
        write_record(run_dir, failure, rank_zero=_is_rank_zero())
        if interrupt.exit_code and in_process_sweep():
            end_interrupted_sweep(interrupt.exit_code)  # the signal was for the whole sweep
        if survives(error) and interrupt.exit_code != EXIT_SIGINT:
            console.warn(f"Sweep job failed, the sweep goes on: {run_dir}\n{failure['traceback']}")
            return FAILED
        if interrupt.exit_code:
            raise SystemExit(interrupt.exit_code) from error
        raise


# --- the seams -------------------------------------------------------------------------
def build_datamodule(cfg: DictConfig):
    """The configured data module, prepared (downloads, decode caches: once, on rank zero)
    and set up, so its class names, counts and input shape are known."""
    datamodule = instantiate(cfg.data)
    if _is_local_rank_zero():  # the other processes start later, from rank zero's fit
        datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def build_classifier(cfg: DictConfig, datamodule):
    """The classifier for ``datamodule``'s classes, input shape and statistics."""
    from imgcls.models.classifier import ImageClassifier

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
        class_weights=_shown(class_weights(cfg.loss.class_weights, datamodule.class_counts), datamodule.class_names),
        test_set_names=list(datamodule.test_sets),
        channels_last=cfg.get("channels_last", False),
        ordinal=getattr(datamodule, "ordinal", False),
    )
    if cfg.get("compile", False):
        model.compile_net()
    return model


def build_callbacks(cfg: DictConfig) -> tuple[list, dict[int, dict]]:
    """The configured callbacks, and each one's config by ``id`` (what the callback's own
    attributes do not tell, e.g. a checkpoint's ``every_n_train_steps``); always the warnings
    about data too small or skewed to train on (:class:`DataWarnings`)."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelSummary, ProgressBar

    from imgcls.training.data_warnings import DataWarnings
    from imgcls.training.progress import progress_bar_enabled

    callbacks, configs = [DataWarnings()], {}
    for config in (cfg.get("callbacks") or {}).values():
        if not config:
            continue
        callback = instantiate(config)
        # Dropped rather than failing the run: the LR monitor without loggers, the progress
        # bar with enable_progress_bar=false (or auto, writing to a file), the model summary
        # with enable_model_summary=false.
        if isinstance(callback, LearningRateMonitor) and not _has_loggers(cfg):
            continue
        if isinstance(callback, ProgressBar) and not progress_bar_enabled(cfg.trainer.get("enable_progress_bar", True)):
            continue
        if isinstance(callback, ModelSummary) and not cfg.trainer.get("enable_model_summary", True):
            continue
        callbacks.append(callback)
        configs[id(callback)] = _plain(config)
    return callbacks, configs


def build_trainer(cfg: DictConfig, callbacks=(), **trainer_overrides):
    """The configured ``lightning.Trainer`` with ``callbacks`` and the configured loggers;
    ``trainer.precision: auto`` is resolved first."""
    from lightning.pytorch.callbacks import ModelSummary

    from imgcls.training.model_summary import ModelSummaryLog
    from imgcls.training.precision import resolve_precision
    from imgcls.training.progress import progress_bar_enabled

    resolve_precision(cfg)
    callbacks = list(callbacks)
    # imgcls's summary stands in for Lightning's default one (which prints "Total FLOPs: 0").
    summary = cfg.trainer.get("enable_model_summary", True)
    if summary and not any(isinstance(c, ModelSummary) for c in callbacks):
        callbacks.append(ModelSummaryLog())
    shown = {"enable_progress_bar": progress_bar_enabled(cfg.trainer.get("enable_progress_bar", True)),
             "enable_model_summary": False}
    purge_step = _resumed_step(callbacks) if cfg.get("resume") else None
    loggers = [_logger(c, purge_step) for c in (cfg.get("logger") or {}).values() if c]
    trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, **{**shown, **trainer_overrides}
    )
    _refuse_ddp_in_local_sweep(trainer)
    return trainer


def configure_steps(cfg: DictConfig, trainer, model, datamodule, callback_configs=None, fixed=None) -> int:
    """Resolve ``fused_steps`` (``fixed``: this count instead) for this trainer and hand it to the
    loader and the model."""
    from imgcls.training import fused_steps, tuning

    batch_bytes = datamodule.batch_size * math.prod(datamodule.input_shape)  # uint8 images
    setting = fixed if fixed is not None else cfg.get("fused_steps", 1)
    steps = fused_steps.resolve_fused_steps(
        setting, trainer, batch_bytes, callback_configs, tuning.requested(cfg)
    )
    fused_steps.configure(trainer, model, datamodule, steps)
    return steps


def compose(cfg: DictConfig, extra_callbacks=()):
    """Data module, classifier and trainer of a run, wired together; also the history
    callback (every epoch's validation metrics) and what ``auto`` settings resolved to."""
    import lightning as L

    from imgcls.models.feature_cache import configure_feature_cache
    from imgcls.training.best_val_predictions import BestValidationPredictions
    from imgcls.training.cuda_probe import use_cached_probe_without_driver
    from imgcls.training.epoch_log import EpochLog
    from imgcls.training.history import MetricsHistory
    from imgcls.training.rng import RngState

    use_cached_probe_without_driver()
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    model = build_classifier(cfg, datamodule)
    logged = ["val/loss", *model.val_metrics.keys()]
    if cfg.monitor.metric not in logged:  # e.g. val/top5 with 5 classes, val/kappa unordered
        raise ConfigError(
            f"monitor.metric={cfg.monitor.metric} is not logged for this data ({datamodule.num_classes} "
            f"classes); choose one of {', '.join(logged)}"
        )
    history = MetricsHistory(cfg.monitor.metric, cfg.monitor.mode)
    callbacks, configs = build_callbacks(cfg)
    resume = ResumeOverrides(task_overrides())
    kept = [BestValidationPredictions()] if cfg.get("calibrate", True) else []  # for calibrate()
    trainer = build_trainer(
        cfg, [*callbacks, history, RngState(), EpochLog(cfg.monitor.metric), resume, *kept, *extra_callbacks]
    )
    cache_features = configure_feature_cache(cfg.model.get("cache_features"), model, datamodule)
    if cache_features and cfg.get("fused_steps", 1) not in ("auto", 1):
        raise ConfigError(
            f"fused_steps={cfg.fused_steps} and the feature cache (model.cache_features) do not combine: "
            "set fused_steps=1 or auto, or model.cache_features=false"
        )
    steps = configure_steps(cfg, trainer, model, datamodule, configs, fixed=1 if cache_features else None)
    resolved = {
        "precision": str(trainer.precision),
        "accelerator": type(trainer.accelerator).__name__,
        "devices": trainer.num_devices,
        "fused_steps": steps,
        "resident_data": datamodule.trains_resident(trainer.strategy.root_device),
        "channels_last": bool(model.channels_last),
        "compile": bool(cfg.get("compile", False)),
        "cache_features": cache_features,
    }
    return datamodule, model, trainer, history, resolved


# --- the run ---------------------------------------------------------------------------
def _fit_and_test(cfg: DictConfig, run_dir: Path, started: float, extra_callbacks) -> float | None:
    """The run's stages in order: compose, tune, record what ``auto`` resolved to, fit,
    calibrate, test, report, and the run record (``metrics.json``)."""
    from imgcls.reports.tensorboard import log_final_hparams
    from imgcls.training import tuning
    from imgcls.training.weight_averaging import evaluated_weights

    check_values(cfg)  # in here, so that a sweep records a bad job and goes on
    tuning.check_tuning_config(cfg)
    console.silence_library_noise()
    datamodule, model, trainer, history, resolved = compose(cfg, extra_callbacks)
    tuned = {}
    if tuning.requested(cfg):
        tuned = _tune(cfg, trainer, model, datamodule, run_dir, resolved)
        if tuning.exits_after_tuning(cfg):
            record = {"status": "ok", "trained": False, "tuner": tuned, "wall_time_s": round(time.time() - started, 2)}
            write_record(run_dir, record, rank_zero=trainer.is_global_zero)
            console.info(f"Tuned only ({', '.join(tuning.requested(cfg))}): no training. Results in {run_dir}")
            return None
    _check_before_fit(cfg, model, resolved)
    _record_resolved(cfg, trainer, datamodule, run_dir, resolved)

    trust = bool(cfg.get("trust_checkpoint", False))
    if cfg.train:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=not trust)
    best_path = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    calibration = None
    if cfg.train and cfg.get("calibrate", True):
        from imgcls.training.best_val_predictions import BestValidationPredictions
        from imgcls.training.temperature import calibrate

        kept = next((c for c in trainer.callbacks if isinstance(c, BestValidationPredictions)), None)
        val = kept.of(best_path) if kept is not None else None
        calibration = calibrate(trainer, model, datamodule, best_path or None, weights_only=not trust, val=val)
    test_calibration = _test(cfg, trainer, model, datamodule, best_path, trust, calibration) if cfg.test else {}
    # The test pass's own numbers (float64), which the report shows too.
    test_metrics = {
        f"{split_prefix(name)}{key}": value
        for name, metrics in model.test_results.items()
        for key, value in metrics.items()
    }
    weights = evaluated_weights(trainer.callbacks)
    report = None
    if cfg.get("report", False) and cfg.test:
        report = _report(cfg, trainer, model, datamodule, run_dir, history, best_path, weights, test_calibration)

    best = history.best() or {}
    summary = {
        "status": "ok",
        "monitor": cfg.monitor.metric,
        "best_epoch": best.get("epoch"),
        "best": {key: value for key, value in best.items() if key != "epoch"},
        "test": test_metrics,
        # What validation, the best checkpoint and the test pass evaluated: raw or averaged.
        "weights": weights,
        "test_samples": {name: len(p.labels) for name, p in model.test_predictions.items()},
        "epochs_trained": trainer.current_epoch,
        "best_checkpoint": best_path if trainer.checkpoint_callback else None,
        "last_checkpoint": _last_checkpoint(trainer),
        "params": {
            "total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "frozen": sum(p.numel() for p in model.parameters() if not p.requires_grad),
        },
        "resolved": resolved,
        "calibration": calibration,
        **({"tuner": tuned} if tuned else {}),
        # Unix time: with wall_time_s, when the job ran (parallel sweep jobs overlap).
        "started_at": started,
        "wall_time_s": round(time.time() - started, 2),
        "report": report,
        "warnings": _data_warnings(trainer),
    }
    write_record(run_dir, summary, rank_zero=trainer.is_global_zero)
    log_final_hparams(trainer.loggers, cfg, {**summary["best"], **test_metrics}, computed_hparams(model, trainer))
    _print_where(run_dir, report)
    return summary["best"].get(cfg.monitor.metric)


def _tune(cfg: DictConfig, trainer, model, datamodule, run_dir: Path, resolved: dict) -> dict:
    """The Tuner's finders as configured; what they found is recorded in ``resolved``."""
    from imgcls.training import tuning

    tuning.check_tuning_trainer(cfg, trainer)
    tuned = tuning.tune(cfg, trainer, model, datamodule, run_dir)
    if "lr_find" in tuned:
        resolved["optimizer.lr"] = float(model.hparams.optimizer["lr"])
    if "batch_size_find" in tuned:
        from imgcls.training import fused_steps

        fused_steps.configure(trainer, model, datamodule, resolved["fused_steps"])  # the new batch size
        resolved["data.batch_size"] = int(datamodule.batch_size)
    return tuned


def _check_before_fit(cfg: DictConfig, model, resolved: dict) -> None:
    if cfg.get("report", False):  # a Grad-CAM layer name that the model lacks fails now, not after training
        from imgcls.models.grad_cam import check_layer_name

        check_layer_name(model, OmegaConf.select(cfg, "cam.target_layer"))
    if resolved["fused_steps"] > 1:
        # Lightning compares its own (grouped) batch count with log_every_n_steps; the step
        # losses are logged per optimizer step (models/classifier.py), so the warning is moot.
        warnings.filterwarnings("ignore", message=r".*smaller than the logging interval")


def _record_resolved(cfg: DictConfig, trainer, datamodule, run_dir: Path, resolved: dict) -> None:
    """What ``auto`` settings resolved to (``resolved.yaml``, the console) and the manifest."""
    if trainer.is_global_zero:
        from imgcls.run_manifest import build_manifest, write_manifest

        OmegaConf.save(OmegaConf.create(resolved), run_dir / RESOLVED_FILE)
        write_manifest(run_dir, build_manifest(cfg, datamodule))
    console.info("Resolved: " + ", ".join(f"{key}={value}" for key, value in resolved.items()))


def _test(
    cfg: DictConfig, trainer, model, datamodule, best_path: str, trust: bool, calibration: dict | None
) -> dict:
    """The one test pass of every test set (the best checkpoint's weights), its headline table,
    and each set's calibration, computed once for metrics.json and the report."""
    from imgcls.reports.calibration import split_calibration

    ckpt = best_path or (None if cfg.train else cfg.get("ckpt_path"))
    # Not Lightning's own table (float32, box drawing): the float64 one below, as metrics.json.
    trainer.test(model, datamodule=datamodule, ckpt_path=ckpt, weights_only=not trust, verbose=False)
    if trainer.is_global_zero:
        from imgcls.reports.tables import headline_table

        images = {name: len(p.labels) for name, p in model.test_predictions.items()}
        console.info("Test:\n" + headline_table(model.test_results, images))
    test_calibration = {name: split_calibration(p) for name, p in model.test_predictions.items()}
    if calibration is not None:
        for name, split in test_calibration.items():
            calibration.update({f"{name}_{k}": v for k, v in split.eces().items()})
    return test_calibration


def _report(
    cfg: DictConfig, trainer, model, datamodule, run_dir: Path, history, best_path: str, weights: str,
    test_calibration: dict,
) -> dict | None:
    """The run report (rank zero writes it); first the suspect-label passes over the training
    and validation splits, which every process takes part in, with the tested weights."""
    from imgcls.training.weight_averaging import RAW

    label_check = {}
    suspect_cfg = cfg.get("suspect_labels") or {}
    if suspect_cfg.get("enabled", False):
        from imgcls.training.split_predictions import predict_split

        splits = [predict_split(trainer, model, datamodule, name) for name in ("train", "val")]
        label_check = {
            "labelled_splits": [split for split in splits if split is not None],
            "suspect_min_confidence": float(suspect_cfg.get("min_confidence", 0.5)),
        }
    if not trainer.is_global_zero:
        return None
    from imgcls.reports.report import write_run_report

    notes = [] if weights == RAW else [f"Evaluated with the averaged weights: {weights}."]
    return write_run_report(
        model,
        datamodule,
        run_dir,
        trainer.loggers,
        trainer.global_step,
        notes=notes,
        warnings=_data_warnings(trainer),
        **label_check,
        cam=cfg.get("cam"),
        projector=cfg.get("projector"),
        best=_best_epoch(history, cfg.monitor.metric, trainer.current_epoch, best_path),
        calibration=test_calibration,
        **{key: cfg[key] for key in ("confusion_classes", "confused_pair_examples") if key in cfg},
    )


def _best_epoch(history, monitor: str, epochs: int, checkpoint: str) -> dict | None:
    """The report's line on the best epoch: the same numbers as metrics.json's best_epoch and best."""
    best = history.best()
    if best is None:
        return None
    return {"epoch": best["epoch"], "epochs": epochs, "monitor": monitor, "value": best[monitor], "checkpoint": checkpoint}


def computed_hparams(model, trainer) -> dict[str, object]:
    """What the run derived from its config, for HPARAMS: the starting learning rate of each
    named optimizer group (``backbone`` and ``head`` of differential rates), the class weights."""
    values: dict[str, object] = {
        f"optimizer.lr.{group['name']}": float(group.get("initial_lr", group["lr"]))
        for optimizer in trainer.optimizers
        for group in optimizer.param_groups
        if "name" in group
    }
    if model.hparams.class_weights is not None:
        values["loss.class_weights.computed"] = str([round(w, 4) for w in model.hparams.class_weights])
    return values


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


def _shown(weights: list[float] | None, class_names) -> list[float] | None:
    """The loss's class weights, printed (the first 20 classes of more)."""
    if weights is not None:
        pairs = [f"{name} {weight:.3f}" for name, weight in zip(class_names, weights, strict=True)]
        more = f", ... ({len(pairs)} classes, {min(weights):.3f} to {max(weights):.3f})" if len(pairs) > 20 else ""
        console.info("Class weights of the loss: " + ", ".join(pairs[:20]) + more)
    return weights


def _resumed_step(callbacks: list) -> int | None:
    """The global step of the checkpoint a resume continues from (its ``last.ckpt``)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    last = [Path(c.dirpath) / "last.ckpt" for c in callbacks if isinstance(c, ModelCheckpoint) and c.dirpath]
    return last_global_step(last[0]) if last else None


def _logger(config: DictConfig, purge_step: int | None):
    """A logger; on resume, TensorBoard and the CSV log drop what the interrupted run logged
    after the checkpoint and keep everything before it."""
    purging = config.get("_target_", "").endswith(("TensorBoardLogger", "ResumableCSVLogger"))
    # Steps before the checkpoint's global step log at x < step (an epoch's end at step - 1);
    # everything from x = step on was logged after it, and the resumed run logs it again.
    extra = {"purge_step": purge_step} if purging and purge_step is not None else {}
    return instantiate(config, **extra)


def _data_warnings(trainer) -> list[str]:
    from imgcls.training.data_warnings import DataWarnings

    return [message for c in trainer.callbacks if isinstance(c, DataWarnings) for message in c.warnings]


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


def _is_local_rank_zero() -> bool:
    import os

    return int(os.environ.get("LOCAL_RANK", 0)) == 0


def _has_loggers(cfg: DictConfig) -> bool:
    return any(bool(c) for c in (cfg.get("logger") or {}).values())


def _plain(node) -> dict | None:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _print_where(run_dir: Path, report: str | None) -> None:
    lines = [f"\nRun directory: {run_dir}", f"  metrics:     {run_dir / METRICS_FILE}"]
    if report:
        lines.append(f"  report:      {report}")
    lines += [f"  checkpoints: {run_dir / 'checkpoints'}", f"  TensorBoard: tensorboard --logdir {run_dir}"]
    console.info("\n".join(lines))
