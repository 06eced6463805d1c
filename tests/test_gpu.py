"""On a CUDA machine: the real path trains there, with what ``auto`` picks for a GPU.
Skipped (by conftest) on machines without CUDA; CI has none."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import compose_config

from imgcls.training.run import train

pytestmark = [pytest.mark.gpu, pytest.mark.e2e]


def test_the_demo_trains_on_the_gpu_with_auto_precision_and_grouped_steps(tmp_path):
    cfg = compose_config("experiment=digits_cnn", "data=digits", "trainer.accelerator=gpu", output_dir=tmp_path)
    train(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    assert record["resolved"]["precision"] == ("bf16-mixed" if bf16 else "32-true")
    assert record["resolved"]["accelerator"] == "CUDAAccelerator"
    assert record["resolved"]["fused_steps"] > 1
    assert record["test"]["test/acc"] > 0.9
