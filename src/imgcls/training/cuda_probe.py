"""Keep torch's "is there a GPU?" probe cheap on machines without an NVIDIA driver.

Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``, so that torch counts GPUs
through NVML instead of initialising CUDA (which would break forked DataLoader workers).
Without the driver, NVML's library is missing, the count is never cached, and every
``torch.cuda.is_available()`` tries to load it again. Adam and AdamW ask on every step:
0.27 ms a step here, a quarter of a logistic regression's step on CPU. Without a driver CUDA
cannot be initialised at all, so torch's own cached probe is as safe there.
"""

from __future__ import annotations

import ctypes
import os

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
NVML_LIBRARY = "libnvidia-ml.so.1"


def use_cached_probe_without_driver() -> bool:
    """Drop the NVML-based probe when NVML cannot load; True when it was dropped."""
    if os.environ.get(NVML_CHECK) != "1":
        return False
    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        del os.environ[NVML_CHECK]
        return True
    return False
