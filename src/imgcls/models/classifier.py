"""The one LightningModule: trains, validates and tests any ``nn.Module`` image classifier."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from imgcls.metrics import EpochMetrics, Predictions, classification_metrics, split_metrics, split_prefix
from imgcls.models.net_interface import offers
from imgcls.training.distributed import gather_rows
from imgcls.training.fused_steps import grouped_steps, optimizer_steps, step_schedulers
from imgcls.training.optimization import build_optimizer, build_scheduler


def build_net(config: Mapping, input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """Instantiate a ``_partial_`` net config for the data's input shape and class count."""
    return instantiate(dict(config))(input_shape=list(input_shape), num_classes=num_classes)


def has_convolutions(net: nn.Module) -> bool:
    return any(isinstance(module, nn.Conv2d) for module in net.modules())


class ImageClassifier(L.LightningModule):
    """Wraps a net built from its config. Every argument is plain data, so a checkpoint
    alone rebuilds the model (``ImageClassifier.load_from_checkpoint(path)``).

    Inputs are float images in [0, 1]; normalization with the data's (or the pretrained
    weights') mean and std is part of the model, so exported and reloaded models take the
    same input as the training loop.
    """

    def __init__(
        self,
        net: Mapping,
        num_classes: int,
        class_names: Sequence[str],
        input_shape: Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
        optimizer: Mapping,
        scheduler: Mapping | None = None,
        monitor: str = "val/acc",
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | None = None,
        test_set_names: Sequence[str] = ("test",),
        channels_last: bool | str = False,
        ordinal: bool = False,
    ):
        super().__init__()
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.save_hyperparameters(logger=False)
        self.net = build_net(net, input_shape, num_classes)
        mean, std = offers(self.net).input_normalization() or (mean, std)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        # Temperature scaling (training/temperature.py): fitted on the validation set after
        # training and saved with the weights; 1 means uncalibrated. ``calibrated=False``
        # makes probabilities ignore it. Logits, predictions and losses never use it.
        self.register_buffer("temperature", torch.ones(()))
        self.calibrated = True
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
        self.train_metrics = EpochMetrics(num_classes, "train/", ordinal)
        self._train_loss_sums: list[torch.Tensor] = []
        self._train_samples = 0
        self.val_metrics = classification_metrics(num_classes, "val/", ordinal)
        # After a test pass: each test set's predictions and metrics (on_test_epoch_end).
        self.test_predictions: dict[str, Predictions] = {}
        self.test_results: dict[str, dict[str, float]] = {}
        # "auto": channels_last for nets with 2-D convolutions, which it speeds up; a flat
        # net would only pay for the layout change.
        self.channels_last = has_convolutions(self.net) if channels_last == "auto" else bool(channels_last)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.fused_steps, self.step_batch_size, self._clip = 1, None, None
        # A frozen backbone's features by split and position (models/feature_cache.py), when on.
        self.feature_cache = None

    @classmethod
    def from_checkpoint(cls, path, map_location="cpu", trust: bool = False) -> ImageClassifier:
        """Rebuild from the checkpoint alone. Its state dict holds every weight, so a net that
        can read pretrained weights (``load_weights``) is built without them: the file may
        not be on the machine that evaluates or predicts. The file is read as weights and
        plain data only unless ``trust`` (training/checkpointing.py)."""
        import inspect

        from hydra.utils import get_class

        from imgcls.training.checkpointing import CheckpointReadError, read_checkpoint

        # Memory-mapped: only the hyper-parameters are read here; Lightning loads the weights.
        checkpoint = read_checkpoint(path, trust=trust, mmap=True)
        hyper_parameters = checkpoint.get("hyper_parameters") or {}
        if "net" not in hyper_parameters or "state_dict" not in checkpoint:
            raise CheckpointReadError(
                f"{path} is a PyTorch file, but not an imgcls checkpoint (no net, no state_dict)"
            )
        net = dict(hyper_parameters["net"])
        if "load_weights" in inspect.signature(get_class(net["_target_"])).parameters:
            net["load_weights"] = False
        return cls.load_from_checkpoint(path, map_location=map_location, net=net, weights_only=not trust)

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities of ``logits``: calibrated by the temperature unless ``calibrated`` is off."""
        return (logits / self.temperature if self.calibrated else logits).softmax(dim=1)

    def on_load_checkpoint(self, checkpoint) -> None:
        # Checkpoints saved before temperature scaling existed are uncalibrated.
        state = checkpoint.get("state_dict")
        if state is not None and "temperature" not in state:
            state["temperature"] = torch.ones(())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for float images in [0, 1], shaped ``[N, C, H, W]``."""
        return self.net(self._normalized(images))

    def _normalized(self, images: torch.Tensor) -> torch.Tensor:
        images = (images - self.mean).div_(self.std)  # in place: one batch-sized buffer, not two
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def _logits(self, images: torch.Tensor, split: str, positions: torch.Tensor | None) -> torch.Tensor:
        """Logits of a step's batch: through the feature cache while the backbone is frozen."""
        if self.feature_cache is None or positions is None:
            return self(images)
        if not self.net.backbone_frozen:  # a gradual net's backbone trains now: its features change
            self.feature_cache.clear()
            return self(images)
        return self.net.head(
            self.feature_cache.lookup(split, positions, lambda pick: self._features(images[pick]))
        )

    @torch.no_grad()
    def _features(self, images: torch.Tensor) -> torch.Tensor:
        training = self.net.training
        self.net.eval()  # the backbone's eval-mode features, the same every epoch
        try:
            return self.net.backbone_features(self._normalized(images))
        finally:
            self.net.train(training)

    def compile_net(self) -> None:
        """``compile=true``: torch.compile the net's forward in place (its state dict keeps its
        keys). Only the compute: metric updates and logging stay eager, outside Dynamo."""
        self.net.compile()

    # --- steps -------------------------------------------------------------------------
    def fuse_steps(self, steps: int, batch_size: int, clip: tuple | None = None) -> None:
        """Take ``steps`` optimizer steps on ``batch_size`` samples each per Lightning step; the
        train loader then hands over ``steps`` batches at once (training/fused_steps.py).
        ``clip``: (value, algorithm) of the trainer's gradient clipping, applied every step."""
        self.fused_steps, self.step_batch_size, self._clip = int(steps), int(batch_size), clip
        self.automatic_optimization = self.fused_steps == 1

    def training_step(self, batch, batch_idx):
        # A third element is either MixUp/CutMix soft targets (data.augment), which the loss
        # takes while the training metrics take the original labels, or, with the feature
        # cache (which turns augmentation off), each sample's position, its key there.
        images, labels, *extra = batch
        if not self.automatic_optimization:
            return self._grouped_training_steps(images, labels)
        positions = extra[0] if extra and self.feature_cache is not None else None
        targets = extra[0] if extra and self.feature_cache is None else labels
        logits = self._logits(images, "train", positions)
        loss = self.criterion(logits, targets)
        self._keep_for_epoch_end(logits.detach(), labels, loss.detach() * len(labels))
        if self._logs_step_loss(self.global_step):
            self.log("train/loss_step", loss, prog_bar=True)
        return loss

    def _grouped_training_steps(self, images, labels):
        logits_seen, losses = grouped_steps(self, images, labels)
        losses = torch.stack(losses)
        sizes = torch.tensor([len(step) for step in logits_seen], dtype=losses.dtype, device=losses.device)
        logits = torch.cat(logits_seen)
        self._keep_for_epoch_end(logits, labels[: len(logits)], (losses * sizes).sum())
        self._log_grouped_step_losses(losses)
        return losses.mean()

    def on_before_optimizer_step(self, optimizer) -> None:
        # Grouped steps clip here, as Lightning's automatic optimization does: after the
        # 16-bit scaler has unscaled the gradients, before the step.
        if not self.automatic_optimization and self._clip:
            value, algorithm = self._clip
            self.clip_gradients(optimizer, gradient_clip_val=value, gradient_clip_algorithm=algorithm)

    def _log_grouped_step_losses(self, losses: torch.Tensor) -> None:
        """The loss of every step a plain run logs (each log_every_n_steps-th), at that step:
        Lightning would only write it when a group of steps ends on such a step."""
        every = self.trainer.log_every_n_steps
        if not every:
            return
        first = self.global_step - len(losses)
        # Steps s in the group with (s + 1) % every == 0, found without testing each.
        logged = range(-(first + 1) % every, len(losses), every)
        for i in logged:
            value = float(losses[i])
            for logger in self.loggers:
                logger.log_metrics({"train/loss_step": value}, step=first + i)
        # For the progress bar only (the loggers have it): self.log costs about 1 ms a call.
        if logged and self.trainer.progress_bar_callback is not None:
            self.log(
                "train/loss_step",
                losses[logged[-1]],
                prog_bar=True,
                logger=False,
                batch_size=self.step_batch_size,
            )

    def _logs_step_loss(self, step: int) -> bool:
        """Whether optimizer step ``step`` (0-based) logs its loss: every log_every_n_steps-th."""
        every = self.trainer.log_every_n_steps
        return bool(every) and (step + 1) % every == 0

    def _keep_for_epoch_end(self, logits, labels, loss_sum) -> None:
        # Logging and metric updates every step cost as much as a small model's step, and
        # turning a loss into a number waits for the device. So the steps only keep tensors;
        # the loss is logged when the loggers write (every trainer.log_every_n_steps steps),
        # and the epoch end logs its mean and the metrics.
        self.train_metrics.update(logits, labels)
        self._train_loss_sums.append(loss_sum)
        self._train_samples += len(labels)

    def forget_training_batches(self) -> None:
        """Drop what training steps kept for the epoch's end (after the Tuner's trial steps)."""
        self.train_metrics.reset()
        self._train_loss_sums, self._train_samples = [], 0

    def on_train_batch_end(self, outputs, batch, batch_idx):
        # Grouped steps run under manual optimization, where the schedules are ours to step.
        if not self.automatic_optimization and batch_idx + 1 == self.trainer.num_training_batches:
            step_schedulers(self, "epoch", plateau=False)

    def on_train_epoch_end(self):
        if not self.automatic_optimization:
            step_schedulers(self, "epoch", plateau=True)  # after validation, as Lightning does
        if self._train_samples:
            mean = torch.stack(self._train_loss_sums).sum() / self._train_samples
            self.log("train/loss_epoch", mean, prog_bar=True, sync_dist=True)
            self._train_loss_sums, self._train_samples = [], 0
        self.log_dict(self.train_metrics.compute())
        self.train_metrics.reset()

    def validation_step(self, batch, batch_idx):
        images, labels, positions = batch
        logits = self._logits(images, "val", positions)
        # sync_dist: under DDP the epoch's loss is the mean over every process's samples.
        self.log("val/loss", self.criterion(logits, labels), on_epoch=True, prog_bar=True, sync_dist=True)
        self.val_metrics.update(logits, labels)
        return logits.detach()  # for callbacks (the confusion-matrix figure)

    def on_validation_epoch_end(self):
        self.log_dict(self.val_metrics.compute())
        self.val_metrics.reset()

    # --- the one evaluation pass of the test sets ---------------------------------------
    def on_test_epoch_start(self):
        self._test_batches = {name: [] for name in self.hparams.test_set_names}
        self.test_predictions, self.test_results = {}, {}

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        images, labels, positions = batch
        name = self.hparams.test_set_names[dataloader_idx]
        logits = self._logits(images, name, positions).float()
        self._test_batches[name].append((logits, labels, positions, self.sample_losses(logits, labels)))

    def on_test_epoch_end(self):
        """Every test set's predictions, gathered from all processes, become its metrics:
        the numbers the console, ``metrics.json``, TensorBoard and the report show."""
        for name in self.hparams.test_set_names:
            predictions = self.gathered_predictions(name, self._test_batches[name])
            metrics = split_metrics(predictions, self.hparams.ordinal)
            self.test_predictions[name], self.test_results[name] = predictions, metrics
            prefix = split_prefix(name)
            self.log_dict({prefix + key: value for key, value in metrics.items()}, add_dataloader_idx=False)
        self._test_batches = {}

    def sample_losses(self, logits, labels) -> torch.Tensor:
        return F.cross_entropy(
            logits,
            labels,
            weight=self.criterion.weight,
            label_smoothing=self.criterion.label_smoothing,
            reduction="none",
        )

    def gathered_predictions(self, name: str, batches: list) -> Predictions:
        """``batches`` of (logits, labels, positions, losses) from every process, in dataset order."""
        # A process may hold no batch at all (a tiny or limited test set under DDP).
        empty = (
            torch.zeros(0, self.hparams.num_classes, device=self.device),
            torch.zeros(0, dtype=torch.long, device=self.device),
            torch.zeros(0, dtype=torch.long, device=self.device),
            torch.zeros(0, device=self.device),
        )
        columns = zip(*(batches or [empty]), strict=True)
        logits, labels, positions, losses = (gather_rows(self, torch.cat(column)) for column in columns)
        order = positions.argsort()  # dataset order, whatever the number of processes
        logits, labels = logits[order], labels[order]
        weight = self.criterion.weight
        return Predictions(
            split=name,
            probabilities=self.probabilities(logits.double()).cpu().numpy(),
            labels=labels.cpu().numpy(),
            class_names=self.class_names,
            indices=positions[order].cpu().numpy(),
            losses=losses[order].cpu().double().numpy(),
            loss_weights=weight[labels].cpu().double().numpy() if weight is not None else None,
            logits=logits.cpu().double().numpy(),
            temperature=float(self.temperature) if self.calibrated else 1.0,
        )

    # --- predictions of other splits (calibration, suspect labels) ---------------------
    def on_predict_epoch_start(self):
        self._predict_batches = []
        self.predicted = None

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0):
        """Probabilities of a batch. Evaluation batches, ``(images, labels, positions)``, are
        also kept as :attr:`predicted` (the same per-sample results as the test pass)."""
        if not (isinstance(batch, list | tuple) and len(batch) == 3):
            images = batch[0] if isinstance(batch, list | tuple) else batch
            return self.probabilities(self(images).float())
        images, labels, positions = batch
        # A split of the data module (training/split_predictions.py): through the feature cache.
        split = getattr(self.trainer.datamodule, "predict_split", None)
        logits = self._logits(images, split, positions).float()
        self._predict_batches.append((logits, labels, positions, self.sample_losses(logits, labels)))
        return self.probabilities(logits)

    def on_predict_epoch_end(self):
        if self._predict_batches:
            self.predicted = self.gathered_predictions("predict", self._predict_batches)
        self._predict_batches = []

    # --- optimization ------------------------------------------------------------------
    def configure_optimizers(self):
        groups = offers(self.net).parameter_groups(lr=self.hparams.optimizer["lr"]) or self.parameters()
        optimizer = build_optimizer(self.hparams.optimizer, groups)
        schedule = self.hparams.scheduler
        interval = (schedule or {}).get("interval", "epoch")
        if interval == "epoch":
            length = self.trainer.max_epochs
        else:
            length = optimizer_steps(self.trainer, self.fused_steps, self.step_batch_size)
        scheduler = build_scheduler(schedule, optimizer, int(length), monitor=self.hparams.monitor)
        if scheduler and not self.automatic_optimization:
            scheduler.pop("monitor", None)  # fused steps step the schedules themselves
        return {"optimizer": optimizer, "lr_scheduler": scheduler} if scheduler else optimizer

    def configure_callbacks(self):
        """Parameter counts for every run, plus what the net's training needs (e.g. unfreezing)."""
        from imgcls.training.finetuning import ParameterCounts

        return [ParameterCounts(), *offers(self.net).training_callbacks()]
