"""``python evaluate.py ckpt_path=...``: a checkpoint's report on its test sets."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from imgcls.config import ConfigError

RUN_CONFIG = Path(".hydra") / "config.yaml"


def find_run_dir(ckpt_path: str | Path) -> Path | None:
    """The training run directory holding a checkpoint (``<run>/checkpoints/x.ckpt``), if any."""
    for parent in list(Path(ckpt_path).resolve().parents)[:3]:
        if (parent / RUN_CONFIG).is_file():
            return parent
    return None


def evaluate(cfg: DictConfig) -> Path:
    """Load the checkpoint and its data, write the report; return the report.md path."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from imgcls.inference.loading import load_classifier
    from imgcls.reports.report import write_model_report

    ckpt = Path(cfg.ckpt_path)
    run_dir = find_run_dir(ckpt)
    data_cfg = cfg.get("data") or _run_data_config(ckpt, run_dir)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_classifier(ckpt, map_location=device)
    datamodule = instantiate(data_cfg)
    datamodule.setup("test")
    if datamodule.class_names != model.class_names:
        raise ConfigError(
            f"the data's classes {datamodule.class_names[:10]}... differ from the checkpoint's "
            f"{model.class_names[:10]}...; pick the data the model was trained on (data=...)"
        )
    out_dir = Path(cfg.output_dir) if cfg.output_dir else (run_dir or ckpt.parent) / "evaluation" / ckpt.stem
    tensorboard = SummaryWriter(str(out_dir / "tensorboard"))
    try:
        report = write_model_report(
            model,
            datamodule,
            out_dir,
            ordinal=cfg.ordinal,
            run_dir=run_dir,
            tensorboard=tensorboard,
            gallery_size=cfg.gallery_size,
            confused_pairs_top=cfg.confused_pairs,
            title=f"Evaluation of {ckpt.name}",
        )
    finally:
        tensorboard.close()
    print(f"Report: {report}\nTensorBoard: tensorboard --logdir {out_dir / 'tensorboard'}")
    return report


def _run_data_config(ckpt: Path, run_dir: Path | None) -> DictConfig:
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt}")
    if run_dir is None:
        raise ConfigError(
            f"{ckpt} is not inside a training run directory (no {RUN_CONFIG} above it); "
            "choose its data with data=<option>"
        )
    return OmegaConf.load(run_dir / RUN_CONFIG).data
