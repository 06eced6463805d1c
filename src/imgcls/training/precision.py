"""``trainer.precision: auto``: the fastest precision that keeps accuracy on the device.

GPUs with bf16 (Ampere and later) train in bf16 mixed precision: tensor cores, half the
activation memory, and no loss scaling. Everything else trains in fp32. On CPU bf16 stays
an option (``trainer.precision=bf16-mixed``): scripts/bench.py measured it 1.5x faster on
top of channels_last on a CPU with native bf16, but it moves results beyond rounding
(tests/test_speed.py), and CPUs without native bf16 emulate it slowly.
"""

from __future__ import annotations

from omegaconf import DictConfig, open_dict

AUTO = "auto"


def fastest_precision(accelerator: str) -> str:
    import torch

    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported(including_emulation=False) else "32-true"


def resolve_precision(cfg: DictConfig) -> str:
    """Replace ``trainer.precision: auto`` in ``cfg`` by the device's precision; return it."""
    if str(cfg.trainer.get("precision")) == AUTO:
        with open_dict(cfg):
            cfg.trainer.precision = fastest_precision(str(cfg.trainer.get("accelerator", "auto")))
    return str(cfg.trainer.precision)
