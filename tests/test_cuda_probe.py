"""Without an NVIDIA driver, torch's GPU probe is cached instead of reloading NVML each call
(scripts/bench.py shows what it costs: Adam asks on every step)."""

import ctypes
import os

import lightning  # noqa: F401 - sets the NVML-based probe, as in every training run
import torch

from imgcls.training.cuda_probe import NVML_CHECK, use_cached_probe_without_driver


def test_probe_is_dropped_only_where_nvml_cannot_load(monkeypatch):
    monkeypatch.setenv(NVML_CHECK, "1")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())  # a machine with the driver
    assert not use_cached_probe_without_driver()
    assert os.environ[NVML_CHECK] == "1"

    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", missing)  # no driver, as on this CPU machine
    assert use_cached_probe_without_driver()
    assert NVML_CHECK not in os.environ
    assert torch.cuda.is_available() == (torch.cuda.device_count() > 0)
    assert not use_cached_probe_without_driver()  # once is enough
