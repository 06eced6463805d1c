"""Random-number-generator state in checkpoints, which Lightning leaves out (#17543).

With it, a resumed run draws the same augmentations and dropout masks as an uninterrupted
one. The data order needs no state: the training sampler's shuffle is a function of
(seed, epoch), and every loader has its own generator, so nothing else draws from the
global generators between the end of one epoch and the start of the next.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


class RngState(Callback):
    """Saves the Python, NumPy, torch (CPU and CUDA) generator states; restores them on resume."""

    def state_dict(self) -> dict:
        state = {
            "python": random.getstate(),
            # As plain numbers and a tensor, which checkpoints loaded with weights_only accept.
            "numpy": _numpy_state(),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        random.setstate(state_dict["python"])
        kind, key, position, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((kind, key.numpy().astype(np.uint32), position, has_gauss, cached))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


def _numpy_state() -> tuple:
    kind, key, position, has_gauss, cached = np.random.get_state()
    return kind, torch.from_numpy(key.astype(np.int64)), int(position), int(has_gauss), float(cached)
