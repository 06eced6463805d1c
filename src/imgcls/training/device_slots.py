"""A parallel sweep's worker process takes one GPU for its lifetime (hydra/launcher=parallel).

Hydra's joblib launcher runs ``n_jobs`` worker processes and hands each its next job as the
last one ends, so job numbers say nothing about which GPU is free. Instead every worker locks
one free GPU slot (a lock file in the sweep directory, released by the OS when the worker
exits) the first time it runs a job and keeps it: ``n_jobs`` workers, ``n_jobs`` GPUs, never
two jobs on one device. The slot becomes ``CUDA_VISIBLE_DEVICES`` before CUDA starts, so the
job itself sees one GPU, ``cuda:0``, and needs no ``trainer.devices`` of its own.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from imgcls.config import ConfigError

LOCK_DIR = ".device_slots"

# The open lock file and the GPU of this worker process, kept while the process lives.
_slot: tuple[object, str] | None = None


def visible_gpus() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else all of them."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [device for device in visible.split(",") if device.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def take_device(sweep_dir: str | Path, gpus: list[str]) -> str:
    """Lock one of ``gpus`` for this process (the same one on every later call) and make it
    the only GPU this process sees. Raises when every GPU is taken by another worker."""
    global _slot
    if _slot is None:
        import torch

        if torch.cuda.is_initialized():
            raise RuntimeError("a parallel sweep job must take its GPU before CUDA starts")
        lock_dir = Path(sweep_dir) / LOCK_DIR
        lock_dir.mkdir(parents=True, exist_ok=True)
        for gpu in gpus:
            lock = open(lock_dir / f"gpu{gpu}.lock", "w")  # noqa: SIM115 - held for the process lifetime
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            _slot = (lock, gpu)
            break
        else:
            raise ConfigError(
                f"hydra/launcher=parallel: every GPU ({','.join(gpus)}) is taken by another job; "
                f"set hydra.launcher.n_jobs to at most {len(gpus)}"
            )
        os.environ["CUDA_VISIBLE_DEVICES"] = _slot[1]
    return _slot[1]


def pin_parallel_job() -> str | None:
    """In a sweep of the joblib launcher on a machine with GPUs: this job's GPU; else ``None``."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    if not str(hydra.launcher.get("_target_", "")).endswith("JoblibLauncher"):
        return None
    gpus = visible_gpus()
    return take_device(hydra.sweep.dir, gpus) if gpus else None
