"""``python evaluate.py ckpt_path=...``: a checkpoint's report on its test sets."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from imgcls.config import ConfigError, check_projector
from imgcls.errors import MissingFileError

RUN_CONFIG = Path(".hydra") / "config.yaml"


def find_run_dir(ckpt_path: str | Path) -> Path | None:
    """The training run directory holding a checkpoint (``<run>/checkpoints/x.ckpt``), if any."""
    for parent in list(Path(ckpt_path).resolve().parents)[:3]:
        if (parent / RUN_CONFIG).is_file():
            return parent
    return None


def evaluate(cfg: DictConfig) -> Path:
    """Load the checkpoint and its data, run the test pass, write the report; return report.md.

    The same evaluation path as training's test: ``trainer.test`` predicts each test set
    once, under the run's precision, and the report shows those predictions' metrics.
    """
    import lightning as L
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from imgcls import console
    from imgcls.inference.loading import load_classifier
    from imgcls.inference.tta import check_mode
    from imgcls.reports.report import write_evaluation_report
    from imgcls.training.precision import fastest_precision

    console.silence_library_noise()
    tta = check_mode(cfg.get("tta"))
    check_projector(cfg.get("projector"))
    ckpt = Path(cfg.ckpt_path)
    run_dir = find_run_dir(ckpt)
    data_cfg = cfg.get("data") or _run_data_config(ckpt, run_dir)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_classifier(ckpt, map_location=device, trust=cfg.get("trust_checkpoint", False))
    model.calibrated = bool(cfg.get("calibrated", True))
    overrides = {"eval_batch_size": cfg.batch_size} if cfg.get("batch_size") else {}
    datamodule = instantiate(data_cfg, **overrides)
    datamodule.prepare_data()
    datamodule.setup("test")
    from imgcls.models.grad_cam import check_layer_name

    check_layer_name(model, OmegaConf.select(cfg, "cam.target_layer"))
    if datamodule.class_names != model.class_names:
        raise ConfigError(
            f"the data's classes {datamodule.class_names[:10]}... differ from the checkpoint's "
            f"{model.class_names[:10]}...; pick the data the model was trained on (data=...)"
        )
    precision = cfg.precision
    if precision == "auto":
        precision = _run_precision(run_dir) or fastest_precision("gpu" if device == "cuda" else "cpu")
    trainer = L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_test_batches=cfg.limit_test_batches,
    )
    trainer.test(model, datamodule=datamodule, verbose=False)
    tta_results = _tta_results(trainer, model, datamodule, tta)
    out_dir = Path(cfg.output_dir) if cfg.output_dir else (run_dir or ckpt.parent) / "evaluation" / ckpt.stem
    tensorboard = SummaryWriter(str(out_dir / "tensorboard"))
    kwargs = {} if cfg.ordinal is None else {"ordinal": cfg.ordinal}
    try:
        report = write_evaluation_report(
            model,
            datamodule,
            out_dir,
            run_dir=run_dir,
            tensorboard=tensorboard,
            gallery_size=cfg.gallery_size,
            confused_pairs_top=cfg.confused_pairs,
            cam=cfg.get("cam"),
            projector=cfg.get("projector"),
            confusion_classes=cfg.confusion_classes,
            confused_pair_examples=cfg.confused_pair_examples,
            title=f"Evaluation of {ckpt.name} ({precision})",
            notes=_tta_notes(tta, model.test_results, tta_results),
            **kwargs,
        )
    finally:
        tensorboard.close()
    from imgcls.reports.tables import headline_table

    images = {name: len(p.labels) for name, p in model.test_predictions.items()}
    print(headline_table(model.test_results, images))
    if tta_results:
        print(f"\nWith test-time augmentation (tta={tta}):\n{headline_table(tta_results, images)}")
    print(f"\nReport: {report}\nTensorBoard: tensorboard --logdir {out_dir / 'tensorboard'}")
    return report


def _tta_results(trainer, model, datamodule, tta: str) -> dict[str, dict[str, float]]:
    """Each test set's metrics with test-time augmentation (a second test pass); the model's
    own results and predictions stay the plain pass's, which the report shows."""
    from imgcls.inference.tta import averaging_views

    if tta == "none":
        return {}
    plain = model.test_results, model.test_predictions
    with averaging_views(model, tta):
        trainer.test(model, datamodule=datamodule, verbose=False)
    results = model.test_results
    model.test_results, model.test_predictions = plain
    return results


def _tta_notes(tta: str, plain: dict, augmented: dict) -> list[str]:
    """One note per test set: its metrics with TTA next to the plain ones."""
    notes = []
    for name, metrics in augmented.items():
        pairs = ", ".join(f"{key} {value:.4f} (plain {plain[name][key]:.4f})" for key, value in metrics.items())
        notes.append(f"test-time augmentation tta={tta} on {name}: {pairs}")
    return notes


def _run_precision(run_dir: Path | None) -> str | None:
    from imgcls.run_record import RESOLVED_FILE

    resolved = run_dir / RESOLVED_FILE if run_dir else None
    if resolved and resolved.is_file():
        return str(OmegaConf.load(resolved).get("precision") or "") or None
    return None


def _run_data_config(ckpt: Path, run_dir: Path | None) -> DictConfig:
    if not ckpt.is_file():
        raise MissingFileError(f"checkpoint not found: {ckpt}")
    if run_dir is None:
        raise ConfigError(
            f"{ckpt} is not inside a training run directory (no {RUN_CONFIG} above it); "
            "choose its data with data=<option>"
        )
    return OmegaConf.load(run_dir / RUN_CONFIG).data
