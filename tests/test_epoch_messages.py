"""Messages that name an epoch count it as the console does, from 1."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from imgcls.training.divergence import FailOnNonFiniteLoss


def test_a_nan_loss_stops_the_run_naming_the_epoch_from_1():
    check = FailOnNonFiniteLoss(check_every_n_steps=1)
    third_epoch = SimpleNamespace(current_epoch=2, global_step=76)  # Lightning counts from 0
    with pytest.raises(FloatingPointError, match=r"training loss is nan at epoch 3, step 76"):
        check.on_train_batch_end(third_epoch, None, {"loss": torch.tensor(float("nan"))}, None, 0)


def test_gradual_unfreezing_names_the_epoch_from_1(caplog):
    import logging

    from torch import nn

    from imgcls.training.finetuning import GradualUnfreezing

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.head = nn.Linear(2, 2), nn.Linear(2, 2)
            self.set_backbone_trainable(False)

        @property
        def backbone_frozen(self) -> bool:
            return not any(p.requires_grad for p in self.backbone.parameters())

        def set_backbone_trainable(self, trainable: bool) -> None:
            self.backbone.requires_grad_(trainable)

        def backbone_parameters(self):
            return self.backbone.parameters()

    net = Net()
    optimizer = torch.optim.SGD(net.head.parameters(), lr=1e-3)
    trainer = SimpleNamespace(lr_scheduler_configs=[], optimizers=[optimizer])
    module = SimpleNamespace(net=net, hparams=SimpleNamespace(optimizer={"lr": 1e-3}), parameters=net.parameters,
                             trainer=trainer, global_step=0, loggers=[])
    caplog.set_level(logging.INFO, logger="imgcls")
    GradualUnfreezing(unfreeze_at_epoch=5, backbone_lr_mult=0.1).finetune_function(module, 5, optimizer)
    # The sixth epoch, "epoch 6/N" on the console, is the first to train the backbone.
    assert "Epoch 6: backbone unfrozen (after 5 epochs of the head alone), learning rate 0.0001" in caplog.text
