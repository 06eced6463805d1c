"""Temperature scaling (Guo et al., 2017): one scalar T fitted on the validation set after
training, so that ``softmax(logits / T)`` says how often the model is right.

T only rescales the logits, so predictions and accuracy stay the same; the probabilities
of test sets, ``predict.py`` and ``evaluate.py`` use it (``calibrated=false`` turns it off).
T is the classifier's ``temperature`` buffer, saved with the weights in the best checkpoint.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from imgcls import console
from imgcls.metrics import Predictions
from imgcls.reports.calibration import calibration_bins
from imgcls.training.split_predictions import predict_split


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The T > 0 minimizing the negative log-likelihood of ``softmax(logits / T)`` (LBFGS on log T)."""
    logits, labels = logits.detach().double(), labels.detach().long()
    if not len(labels):
        return 1.0
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)  # T = exp(log T) stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def at_temperature(predictions: Predictions, temperature: float) -> Predictions:
    """``predictions`` with probabilities ``softmax(logits / temperature)``."""
    raw = predictions.uncalibrated()
    scaled = torch.from_numpy(raw.logits / temperature).softmax(dim=1).numpy()
    return replace(raw, probabilities=scaled, temperature=float(temperature))


def calibrate(
    trainer, model, datamodule, ckpt_path: str | None, weights_only: bool = True, val: Predictions | None = None
) -> dict | None:
    """Fit the temperature of ``ckpt_path``'s weights (the model's own without one) on the
    validation set, set it on ``model`` and store it in that checkpoint. Returns the
    temperature and the validation ECE before and after, or None without validation data.
    ``val``: those weights' validation predictions, where training kept them
    (training/best_val_predictions.py); otherwise the validation set is predicted again."""
    if val is None:
        val = predict_split(trainer, model, datamodule, "val", ckpt_path=ckpt_path, weights_only=weights_only)
    if val is None:
        console.warn("No validation images: the model stays uncalibrated (temperature 1).")
        return None
    temperature = fit_temperature(torch.from_numpy(val.logits), torch.from_numpy(val.labels))
    model.temperature.fill_(temperature)
    if ckpt_path and trainer.is_global_zero:
        store_temperature(ckpt_path, temperature)
    trainer.strategy.barrier()  # every process's test pass reads the updated file
    logits, labels = torch.from_numpy(val.logits).double(), torch.from_numpy(val.labels).long()
    # What the fit minimizes (the NLL) never rises; the binned ECE of a model that was well
    # calibrated already can, by noise, on a small validation set.
    summary = {
        "temperature": temperature,
        "val_nll_uncalibrated": float(F.cross_entropy(logits, labels)),
        "val_nll": float(F.cross_entropy(logits / temperature, labels)),
        "val_ece_uncalibrated": calibration_bins(val.uncalibrated()).ece,
        "val_ece": calibration_bins(at_temperature(val, temperature)).ece,
    }
    console.info(
        f"Temperature scaling: T = {temperature:.4f}, validation NLL {summary['val_nll_uncalibrated']:.4f} -> "
        f"{summary['val_nll']:.4f}, ECE {summary['val_ece_uncalibrated']:.4f} -> {summary['val_ece']:.4f}"
    )
    return summary


def store_temperature(ckpt_path: str, temperature: float) -> None:
    """Write ``temperature`` into the checkpoint's weights, atomically (weights and plain data only)."""
    from imgcls.training.checkpointing import AtomicCheckpointIO, read_checkpoint

    checkpoint = read_checkpoint(ckpt_path)
    checkpoint["state_dict"]["temperature"] = torch.tensor(float(temperature), dtype=torch.float32)
    AtomicCheckpointIO().save_checkpoint(checkpoint, ckpt_path)
