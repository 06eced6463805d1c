"""A diverged run stops with a message that names the epoch as the console counts it."""

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
