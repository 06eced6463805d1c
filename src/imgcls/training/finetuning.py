"""Fine-tuning callbacks: unfreeze a pretrained backbone during training; count parameters."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import BaseFinetuning, Callback

from imgcls import console


class GradualUnfreezing(BaseFinetuning):
    """Train the head alone, then, from epoch ``unfreeze_at_epoch``, the backbone too, at
    ``lr * backbone_lr_mult`` (``lr`` from the optimizer config).

    Works on a net with ``backbone_frozen``, ``backbone_parameters()`` and
    ``set_backbone_trainable()`` (``TorchvisionNet``). Lightning's ``BaseFinetuning`` stores
    the added parameter group in checkpoints, so a resumed run keeps it.
    """

    def __init__(self, unfreeze_at_epoch: int, backbone_lr_mult: float):
        super().__init__()
        self.unfreeze_at_epoch = int(unfreeze_at_epoch)
        self.backbone_lr_mult = float(backbone_lr_mult)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":  # testing after training must not freeze the trained backbone again
            super().setup(trainer, pl_module, stage)

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        pl_module.net.set_backbone_trainable(False)

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer) -> None:
        net = pl_module.net
        if epoch < self.unfreeze_at_epoch or not net.backbone_frozen:
            return
        lr = float(pl_module.hparams.optimizer["lr"]) * self.backbone_lr_mult
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        backbone = [p for p in net.backbone_parameters() if id(p) not in in_optimizer]
        net.set_backbone_trainable(True)
        if backbone:  # not yet there (a resumed run restores the group itself)
            optimizer.add_param_group({"params": backbone, "lr": lr, "name": "backbone"})
            _extend_schedulers(pl_module.trainer, lr)
        # Lightning's epoch counts from 0, as unfreeze_at_epoch does; the console's lines from 1.
        heads_only = f"{epoch} epoch{'s' if epoch != 1 else ''} of the head alone"
        console.info(f"Epoch {epoch + 1}: backbone unfrozen (after {heads_only}), learning rate {lr:g}")
        log_parameter_counts(pl_module)


def _extend_schedulers(trainer: L.Trainer, lr: float) -> None:
    """Learning-rate schedulers keep one base rate per parameter group: give the new group its own."""
    for config in trainer.lr_scheduler_configs:
        for scheduler in [config.scheduler, *getattr(config.scheduler, "_schedulers", [])]:
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs.append(lr)
    for group in trainer.optimizers[0].param_groups:
        group.setdefault("initial_lr", lr)


def parameter_counts(module) -> dict[str, int]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "frozen": total - trainable}


def log_parameter_counts(pl_module: L.LightningModule) -> dict[str, int]:
    """Print the counts and send them to every logger as ``params/{total,trainable,frozen}``."""
    counts = parameter_counts(pl_module)
    console.info("Parameters: " + ", ".join(f"{name} {count:,}" for name, count in counts.items()))
    step = pl_module.global_step
    for logger in pl_module.loggers:
        logger.log_metrics({f"params/{name}": count for name, count in counts.items()}, step=step)
    return counts


class ParameterCounts(Callback):
    """Total, trainable and frozen parameter counts at the start of training."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_parameter_counts(pl_module)
